"""A corpus of realistic rule files (tests/rules/corpus/: host, Kubernetes, SLO burn
rates over classic histograms, etcd, Go runtime, Prometheus self-monitoring with its
template functions, blackbox probes), written for this project in the shapes public packs
use. Each file must be accepted exactly as ``promtool check rules`` accepts it, and on
generated data both tools must report the same alerts, annotations and recorded samples:
a promtool unit test that expects nothing makes each tool print everything it got."""

from __future__ import annotations

import io
import random
import re
import subprocess
from pathlib import Path
from typing import Any

import promql_parser as pp
import pytest
import yaml

from sidecar.rules.files import check_rules, load_rules
from sidecar.store import Store

CORPUS = Path(__file__).resolve().parent / "rules" / "corpus"
FILES = sorted(p.name for p in CORPUS.glob("*.yml"))

# Labels every generated series carries, so that joins `on (...)` and `by (...)` find
# something; `{i}` tells the two instances apart.
COMMON = {
    "instance": "{i}:9100",
    "job": "svc",
    "namespace": "ns",
    "pod": "p-{i}",
    "container": "c",
    "cluster": "k",
    "device": "sda",
    "mountpoint": "/",
    "name": "n",
    "verb": "GET",
    "resource": "pods",
    "remote_name": "r",
    "url": "u",
    "persistentvolumeclaim": "pvc",
    "horizontalpodautoscaler": "h",
    "version": "go1.21.3",
    "quantile": "1",
}
BUCKETS = ("0.1", "0.5", "1", "+Inf")
COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
EVAL_TIMES = ("20m", "45m", "70m")


def test_corpus_is_there() -> None:
    """The parametrized tests below run on these files, none missing."""
    assert FILES == [
        "apiserver-slo.yml",
        "blackbox.yml",
        "etcd.yml",
        "go-runtime.yml",
        "kubernetes.yml",
        "node.yml",
        "prometheus-self.yml",
    ]


def _selectors(node: Any, out: list[Any]) -> None:
    """Every vector selector under ``node`` of promql-parser's tree."""
    kind = type(node).__name__
    if kind == "VectorSelector":
        out.append(node)
    elif kind == "MatrixSelector":
        out.append(node.vector_selector)
    else:
        for attr in ("expr", "lhs", "rhs", "param"):
            child = getattr(node, attr, None)
            if child is not None:
                _selectors(child, out)
        for arg in getattr(node, "args", None) or ():
            _selectors(arg, out)


def _regex_value(regex: str) -> str:
    """A value the (anchored) regex matches: its first alternative, or the literal part."""
    for candidate in (
        regex.split("|", maxsplit=1)[0],
        regex.replace(".*", "").replace(".+", "x"),
        "500",
    ):
        if re.fullmatch(regex, candidate):
            return candidate
    raise AssertionError(f"no simple value matches {regex!r}")


def _wanted(rules: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Metric name -> the labels its selectors' equality and regex matchers demand (the
    first selector wins a conflict). One label set per name keeps every aggregation to
    the two instances, whose float sum does not depend on the order promtool loads them."""
    wanted: dict[str, dict[str, str]] = {}
    recorded = {r["record"] for r in rules if "record" in r}
    for rule in rules:
        found: list[Any] = []
        _selectors(pp.parse(rule["expr"]), found)
        for vs in found:
            labels = {}
            for m in vs.matchers.matchers:
                op = str(m.op).rsplit(".", 1)[-1]
                if op == "Equal":
                    labels[m.name] = m.value
                elif op == "Re":
                    labels[m.name] = _regex_value(m.value)
            if vs.name not in recorded:
                wanted[vs.name] = labels | wanted.get(vs.name, {})
    return wanted


def _values(rng: random.Random, name: str, bucket: int) -> str:
    if name.endswith(COUNTER_SUFFIXES):
        start = round(rng.uniform(0, 100) * (bucket + 1), 2)
        return f"{start}+{round(rng.uniform(0, 5) * (bucket + 1), 3)}x75"
    if any(word in name for word in ("timestamp", "expiry", "time_seconds", "schedule")):
        return f"{rng.randint(0, 5_000_000)}+{rng.randint(0, 120)}x75"
    scale = 1e9 if "bytes" in name else rng.choice([1, 10, 1000])
    return " ".join(str(round(rng.uniform(0, 1) * scale, 3)) for _ in range(76))


def _series(rules: list[dict[str, Any]], seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    series = {}
    for name, fixed in _wanted(rules).items():
        for inst in ("a", "b"):
            labels = {k: v.format(i=inst) for k, v in COMMON.items()} | fixed
            buckets: tuple[str | None, ...] = (
                BUCKETS if name.endswith("_bucket") and "le" not in labels else (None,)
            )
            for i, le in enumerate(buckets):
                lab = labels if le is None else labels | {"le": le}
                desc = name + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(lab.items())) + "}"
                series[desc] = _values(rng, name, i)
    return series


def _unit_test(rule_file: Path, seed: int) -> str:
    """A promtool unit test of ``rule_file`` on generated data that expects nothing."""
    rules = [r for g in yaml.safe_load(rule_file.read_text())["groups"] for r in g["rules"]]
    alerts = dict.fromkeys(r["alert"] for r in rules if "alert" in r)
    records = dict.fromkeys(r["record"] for r in rules if "record" in r)
    test: dict[str, Any] = {
        "interval": "1m",
        "input_series": [{"series": k, "values": v} for k, v in _series(rules, seed).items()],
        "alert_rule_test": [
            {"eval_time": t, "alertname": a, "exp_alerts": []} for a in alerts for t in EVAL_TIMES
        ],
    }
    if records:
        test["promql_expr_test"] = [
            {"expr": r, "eval_time": t, "exp_samples": []} for r in records for t in EVAL_TIMES
        ]
    doc = {"rule_files": [str(rule_file)], "evaluation_interval": "1m", "tests": [test]}
    return yaml.safe_dump(doc, sort_keys=False, width=100_000)


def _run(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("name", FILES)
def test_every_rule_loads_and_evaluates(name: str) -> None:
    """No rule of the corpus is refused or loads as one whose evaluations fail."""
    groups = load_rules([str(CORPUS / name)])
    store = Store(retention_ms=3_600_000, max_series=10)
    for group in groups:
        for rule in group.rules:
            rule.query.evaluate(store, 3_600_000)
    written = [r for g in yaml.safe_load((CORPUS / name).read_text())["groups"] for r in g["rules"]]
    assert [r.name for g in groups for r in g.rules] == [
        r.get("alert", r.get("record")) for r in written
    ]


@pytest.mark.integration
@pytest.mark.parametrize("name", FILES)
def test_check_rules_says_what_promtool_says(name: str) -> None:
    """check-rules prints and exits exactly as promtool check rules does: the file is valid."""
    path = str(CORPUS / name)
    out, err = io.StringIO(), io.StringIO()
    code = check_rules([path], out, err)
    real = _run(["promtool", "check", "rules", path], CORPUS)
    assert (code, out.getvalue(), err.getvalue()) == real
    assert code == 0


@pytest.mark.integration
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("name", FILES)
def test_both_tools_get_the_same_alerts_and_samples(name: str, seed: int, tmp_path: Path) -> None:
    """Every alert (labels and expanded annotations) and every recorded sample, at three
    times, as promtool's own failure report prints them, is the same in both tools."""
    (tmp_path / "t.yml").write_text(_unit_test(CORPUS / name, seed))
    ours = _run(["leak-sidecar", "test-rules", "t.yml"], tmp_path)
    real = _run(["promtool", "test", "rules", "t.yml"], tmp_path)
    assert ours == real
    # Nothing is expected, so the report (on stderr) lists what fired: the comparison is
    # not vacuous.
    assert real[0] == 1
    assert "Labels:{alertname=" in real[2]
