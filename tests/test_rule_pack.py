"""The leak rule pack (rules/leaks.yml) and its unit tests (tests/rules/pack_*.yml).

The same test files run through the real ``promtool test rules`` and through the
sidecar's embedded engine (``sidecar.rules.unittest.runner.test_rules``): a rule file means the same
thing in Prometheus and in the sidecar. Mutations of the pack prove that each guard in
it is pinned by a test, and a run of the demo app's simulation proves that the pack
fires on the demo's leak and never on its healthy hour.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.core.config import ScrapeConfig
from sidecar.core.durations import parse_duration
from sidecar.demo.app import render_expvar
from sidecar.demo.sim import LeakSettings, Simulation
from sidecar.rules.unittest.runner import test_rules as run_rule_tests
from sidecar.scrape.flatten import flatten

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "rules" / "leaks.yml"
PACK_TESTS = sorted((ROOT / "tests" / "rules").glob("pack_*.yml"))
PROMTOOL = shutil.which("promtool") or "promtool"

# Template forms that render the same in Prometheus 2.42 and in the sidecar.
_TEMPLATE_FUNCS = frozenset(
    {
        "humanize",
        "humanize1024",
        "humanizePercentage",
        "humanizeDuration",
        "printf",
        "toUpper",
        "toLower",
        "title",
        "reReplaceAll",
    }
)
_TEMPLATE_VARS = re.compile(r"^\$value$|^\$labels\.[a-zA-Z_]\w*$|^\$externalLabels\.[a-zA-Z_]\w*$")


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(PACK.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _embedded(path: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = run_rule_tests([str(path)], out=out)
    return code, out.getvalue()


@pytest.mark.integration
def test_promtool_check_rules_accepts_every_rule_file() -> None:
    """``promtool check rules rules/*.yml`` exits 0 and finds the pack's six rules."""
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "rules").glob("*.yml"))
    assert files == ["rules/leaks.yml"]
    res = _promtool("check", "rules", *files, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == "Checking rules/leaks.yml\n  SUCCESS: 6 rules found\n\n"


@pytest.mark.integration
@pytest.mark.parametrize("path", PACK_TESTS, ids=lambda p: p.name)
def test_pack_tests_pass_promtool(path: Path) -> None:
    """Each pack test file passes the real ``promtool test rules``."""
    res = _promtool("test", "rules", path.name, cwd=path.parent)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == f"Unit Testing:  {path.name}\n  SUCCESS\n\n"


@pytest.mark.parametrize("path", PACK_TESTS, ids=lambda p: p.name)
def test_pack_tests_pass_embedded_engine(path: Path) -> None:
    """Each pack test file passes the sidecar's own ``test-rules`` as it passes promtool."""
    code, out = _embedded(path)
    assert code == 0, out
    assert out == f"Unit Testing:  {path}\n  SUCCESS\n\n"


def test_pack_test_files_exist_for_every_rule() -> None:
    """Six test files cover the pack, each rule with a firing case and a silent case."""
    assert [p.name for p in PACK_TESTS] == [
        "pack_cache.yml",
        "pack_goroutines.yml",
        "pack_heap.yml",
        "pack_oom.yml",
        "pack_oom_imminent.yml",
        "pack_pool.yml",
    ]
    firing: set[str] = set()
    silent: set[str] = set()
    for path in PACK_TESTS:
        doc = yaml.safe_load(path.read_text())
        assert doc["rule_files"] == ["../../rules/leaks.yml"]
        for group in doc["tests"]:
            for case in group.get("alert_rule_test", []):
                (firing if case["exp_alerts"] else silent).add(case["alertname"])
    names = {rule["alert"] for rule in _rules()}
    assert firing == names
    assert silent == names


def test_pack_rules_pin_their_for_severity_and_action() -> None:
    """Every rule has a `for`, a severity and an action, and their values are pinned."""
    table = [
        (r["alert"], r["for"], r["labels"]["severity"], r["labels"]["action"]) for r in _rules()
    ]
    assert table == [
        ("CacheKeysGrowing", "5m", "warning", "cache_flush"),
        ("ConnPoolSaturated", "1m", "critical", "circuit_break"),
        ("HeapFloorRising", "20m", "warning", "none"),
        ("OOMPredicted", "5m", "critical", "circuit_break"),
        ("OOMImminent", "1m", "critical", "circuit_break"),
        ("GoroutinesGrowing", "20m", "warning", "none"),
    ]


def test_pack_annotations_are_complete_and_portable() -> None:
    """Each rule has summary, description and runbook_url, templated only with portable forms."""
    for rule in _rules():
        ann = rule["annotations"]
        assert sorted(ann) == ["description", "runbook_url", "summary"], rule["alert"]
        assert ann["runbook_url"].endswith("/docs/rule-pack.md#" + rule["alert"].lower())
        assert "{{ $value" in ann["summary"]
        assert "{{ $value" in ann["description"]
        for text in ann.values():
            for action in re.findall(r"{{(.*?)}}", text):
                # String literals are arguments; what is left must be values and functions.
                words = re.sub(r'"[^"]*"', " ", action).replace("|", " ").split()
                for word in words:
                    assert word in _TEMPLATE_FUNCS or _TEMPLATE_VARS.match(word), (
                        rule["alert"],
                        word,
                    )


def test_pack_durations_rewrite_mechanically() -> None:
    """Durations are literals, and predict_linear's horizon (seconds) equals its range."""
    exprs = "\n".join(rule["expr"] for rule in _rules())
    horizons = re.findall(r"predict_linear\(\w+\[(\w+)\], (\d+)\)", exprs)
    assert horizons == [("30m", "1800")]
    assert all(parse_duration(rng) == float(sec) for rng, sec in horizons)
    for rule in _rules():
        assert parse_duration(rule["for"]) > 0


# Each guard of the pack, removed or loosened, and the test file that must then fail.
_MUTATIONS: dict[str, tuple[str, str, str]] = {
    "cache: the seed's rate()": (
        "delta(cache_keys_total[10m]) > 300000",
        "rate(cache_keys_total[10m]) > 500",
        "pack_cache.yml",
    ),
    "cache: for 4m": (
        "for: 5m\n        labels:\n          severity: warning",
        "for: 4m\n        labels:\n          severity: warning",
        "pack_cache.yml",
    ),
    "cache: acts on a down target": (
        "> 300000\n          unless leak_sidecar_target_up == 0",
        "> 300000",
        "pack_cache.yml",
    ),
    "pool: unlimited pool": (
        "/ (conn_pool_max > 0) > 0.95",
        "/ conn_pool_max > 0.95",
        "pack_pool.yml",
    ),
    "pool: at 95%": ("(conn_pool_max > 0) > 0.95", "(conn_pool_max > 0) >= 0.95", "pack_pool.yml"),
    "pool: acts on a down target": (
        "> 0.95\n          unless leak_sidecar_target_up == 0",
        "> 0.95",
        "pack_pool.yml",
    ),
    "heap: no slope guard": (
        "          and deriv(go_memstats_next_gc_bytes[10m]) > 0\n          and increase",
        "          and increase",
        "pack_heap.yml",
    ),
    "heap: no GC-count guard": (
        "\n          and increase(go_gc_cycles_total[30m]) >= 5",
        "",
        "pack_heap.yml",
    ),
    "oom: no slope guard": (
        "          and deriv(go_memstats_next_gc_bytes[10m]) > 0\n          and count",
        "          and count",
        "pack_oom.yml",
    ),
    "oom: no history guard": (
        "\n          and count_over_time(go_memstats_next_gc_bytes[30m:1m]) >= 15",
        "",
        "pack_oom.yml",
    ),
    "oom: 30m of history": (
        "count_over_time(go_memstats_next_gc_bytes[30m:1m]) >= 15",
        "go_memstats_next_gc_bytes offset 30m",
        "pack_oom.yml",
    ),
    "oom: limit 0": (
        "\n            / (leak_sidecar_app_memory_limit_bytes > 0)",
        "\n            / leak_sidecar_app_memory_limit_bytes",
        "pack_oom.yml",
    ),
    "oom: acts on a down target": (
        ">= 15\n          unless leak_sidecar_target_up == 0",
        ">= 15",
        "pack_oom.yml",
    ),
    "imminent: heap alone": (
        "\n          and go_memstats_sys_bytes / (leak_sidecar_app_memory_limit_bytes > 0) > 0.85",
        "",
        "pack_oom_imminent.yml",
    ),
    "imminent: Sys alone": (
        "go_memstats_heap_inuse_bytes / (leak_sidecar_app_memory_limit_bytes > 0) > 0.8\n"
        "          and ",
        "",
        "pack_oom_imminent.yml",
    ),
    "imminent: bar at 85%": (
        "(leak_sidecar_app_memory_limit_bytes > 0) > 0.8\n",
        "(leak_sidecar_app_memory_limit_bytes > 0) > 0.85\n",
        "pack_oom_imminent.yml",
    ),
    "imminent: for 2m": (
        "for: 1m\n        labels:\n          severity: critical\n          action: circuit_break\n"
        "        annotations:\n          summary: 'Heap in use",
        "for: 2m\n        labels:\n          severity: critical\n          action: circuit_break\n"
        "        annotations:\n          summary: 'Heap in use",
        "pack_oom_imminent.yml",
    ),
    "imminent: limit 0": (
        "(leak_sidecar_app_memory_limit_bytes > 0) > 0.8\n"
        "          and go_memstats_sys_bytes / (leak_sidecar_app_memory_limit_bytes > 0)",
        "leak_sidecar_app_memory_limit_bytes > 0.8\n"
        "          and go_memstats_sys_bytes / leak_sidecar_app_memory_limit_bytes",
        "pack_oom_imminent.yml",
    ),
    "imminent: acts on a down target": (
        "> 0.85\n          unless leak_sidecar_target_up == 0",
        "> 0.85",
        "pack_oom_imminent.yml",
    ),
    "goroutines: expvar only": (
        "          or\n          (\n            delta(go_goroutines[30m]) > 500\n"
        "            and deriv(go_goroutines[10m]) > 0\n          )\n",
        "",
        "pack_goroutines.yml",
    ),
    "goroutines: no slope guard": (
        "delta(goroutines[30m]) > 500\n            and deriv(goroutines[10m]) > 0",
        "delta(goroutines[30m]) > 500",
        "pack_goroutines.yml",
    ),
}


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(_MUTATIONS))
def test_each_guard_is_pinned_by_a_failing_test(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loosening one guard of the pack makes its test file fail, in promtool and in the
    embedded engine alike, with the same report."""
    old, new, test_file = _MUTATIONS[name]
    text = PACK.read_text()
    assert text.count(old) == 1
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "leaks.yml").write_text(text.replace(old, new))
    tests_dir = tmp_path / "tests" / "rules"
    tests_dir.mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "rules" / test_file, tests_dir / test_file)
    assert _promtool("check", "rules", "rules/leaks.yml", cwd=tmp_path).returncode == 0
    res = _promtool("test", "rules", test_file, cwd=tests_dir)
    assert (res.returncode, res.stderr.startswith("  FAILED:\n")) == (1, True)
    monkeypatch.chdir(tests_dir)
    out, err = io.StringIO(), io.StringIO()
    code = run_rule_tests([test_file], out, err)
    assert (code, out.getvalue(), err.getvalue()) == (1, res.stdout, res.stderr)


# The demo app's simulation, scraped every 15s: an hour healthy, then the leak, then a
# flush 25 minutes into it. The memory limit is the seed's 2 GiB.
_SCRAPE_S = 15
_LEAK_AT = 60 * 60
_FLUSH_AT = 85 * 60
_END = 90 * 60
_SERIES = (
    "cache_keys_total",
    "conn_pool_active",
    "conn_pool_max",
    "goroutines",
    "go_memstats_next_gc_bytes",
    "go_memstats_heap_inuse_bytes",
    "go_memstats_sys_bytes",
    "go_gc_cycles_total",
)


def _demo_series() -> dict[str, list[float]]:
    now = [1000.0]
    sim = Simulation(clock=lambda: now[0], wall=lambda: 1_700_000_000.0)
    config = ScrapeConfig()
    columns: dict[str, list[float]] = {name: [] for name in _SERIES}
    for t in range(0, _END + 1, _SCRAPE_S):
        if t == _LEAK_AT:
            sim.set_leak(LeakSettings(on=True))
        if t == _FLUSH_AT:
            sim.flush()
        samples = flatten(render_expvar(sim.expvar(["demo"])), config).samples
        by_name = {dict(labels)["__name__"]: value for labels, value in samples.items()}
        for name in _SERIES:
            columns[name].append(by_name[name])
        now[0] += _SCRAPE_S
    return columns


def _firing(*names: str) -> list[dict[str, Any]]:
    return [{"labels": f'{{alertname="{n}"}}', "value": 1} for n in names]


def _demo_test_file(path: Path) -> None:
    columns = _demo_series()
    steps = len(columns[_SERIES[0]]) - 1
    series = [
        {"series": name, "values": " ".join(str(int(v)) for v in values)}
        for name, values in columns.items()
    ]
    series += [
        {"series": "leak_sidecar_app_memory_limit_bytes", "values": f"2147483648+0x{steps}"},
        {"series": "leak_sidecar_target_up", "values": f"1+0x{steps}"},
    ]
    firing = 'count by (alertname) (ALERTS{alertstate="firing"})'
    checks = [
        # Nothing pending, let alone firing, in the healthy hour.
        {"expr": "count_over_time(ALERTS[60m])", "eval_time": "60m", "exp_samples": []},
        # Before the flush every leak rule fires; the demo's goroutines grow by 88 at most.
        {
            "expr": firing,
            "eval_time": "84m45s",
            "exp_samples": _firing(
                "CacheKeysGrowing",
                "ConnPoolSaturated",
                "HeapFloorRising",
                "OOMImminent",
                "OOMPredicted",
            ),
        },
        # The flush resolves CacheKeysGrowing and does not re-fire it.
        {
            "expr": 'ALERTS{alertname="CacheKeysGrowing"}',
            "eval_time": "90m",
            "exp_samples": [],
        },
        {
            "expr": 'count_over_time(ALERTS{alertname="GoroutinesGrowing"}[90m])',
            "eval_time": "90m",
            "exp_samples": [],
        },
    ]
    doc = {
        "rule_files": [str(PACK)],
        "evaluation_interval": f"{_SCRAPE_S}s",
        "tests": [
            {"interval": f"{_SCRAPE_S}s", "input_series": series, "promql_expr_test": checks}
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_demo_values_are_whole_numbers() -> None:
    """The demo series written for the rule tests are integers, so no digit is lost."""
    columns = _demo_series()
    assert all(v == int(v) for values in columns.values() for v in values)
    assert max(columns["conn_pool_active"]) == 100
    assert columns["cache_keys_total"][0] == 1500


@pytest.mark.integration
def test_demo_leak_trips_the_pack_in_promtool(tmp_path: Path) -> None:
    """On the demo app's series promtool fires every leak rule and nothing while healthy."""
    path = tmp_path / "demo.yml"
    _demo_test_file(path)
    res = _promtool("test", "rules", path.name, cwd=tmp_path)
    assert (res.returncode, res.stdout) == (0, "Unit Testing:  demo.yml\n  SUCCESS\n\n"), res.stderr


def test_demo_leak_trips_the_pack_in_embedded_engine(tmp_path: Path) -> None:
    """On the demo app's series the sidecar's engine agrees with promtool."""
    path = tmp_path / "demo.yml"
    _demo_test_file(path)
    code, out = _embedded(path)
    assert (code, out) == (0, f"Unit Testing:  {path}\n  SUCCESS\n\n")
