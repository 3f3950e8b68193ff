"""Rule unit tests: every tests/rules file passes promtool and test_rules; failures read alike."""

from __future__ import annotations

import io
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.errors import RuleError
from sidecar.core.model import is_stale
from sidecar.rules.unittest.runner import test_rules as run_rule_tests
from sidecar.rules.unittest.series import parse_metric, parse_values

RULES_DIR = Path(__file__).resolve().parent / "rules"


def _test_files() -> list[Path]:
    files = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and "tests" in doc:
            files.append(path)
    return files


TEST_FILES = _test_files()


def promtool(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def sidecar(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_rule_tests([str(path)], out, err)
    return code, out.getvalue(), err.getvalue()


def test_there_are_enough_cases() -> None:
    """tests/rules holds at least 60 alert and expression checks."""
    cases = 0
    for path in TEST_FILES:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in doc["tests"]:
            cases += len(group.get("alert_rule_test") or []) + len(
                group.get("promql_expr_test") or []
            )
    assert cases >= 60


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_file_passes_test_rules(path: Path) -> None:
    """The embedded engine passes every rule unit test file."""
    code, out, err = sidecar(path)
    assert (code, err) == (0, ""), err
    assert out == f"Unit Testing:  {path}\n  SUCCESS\n\n"


@pytest.mark.integration
@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_file_passes_promtool(path: Path) -> None:
    """Prometheus's own promtool passes the same file: the cases mean what they say."""
    real = promtool(path)
    assert (real.returncode, real.stderr) == (0, "")


RULES = """\
groups:
  - name: g
    rules:
      - alert: High
        expr: x > 1
        for: 1m
        labels: {severity: page}
        annotations: {summary: "{{ $value }} on {{ $labels.pod }}"}
      - record: x:double
        expr: x * 2
"""

FAILING = {
    "wrong_alert": """\
rule_files: [rules.yml]
tests:
  - name: high
    interval: 1m
    input_series:
      - series: 'x{pod="a"}'
        values: '5 5 5'
    alert_rule_test:
      - eval_time: 1m
        alertname: High
        exp_alerts:
          - exp_labels: {severity: page, pod: b}
            exp_annotations: {summary: "5 on a"}
      - eval_time: 0m
        alertname: High
        exp_alerts:
          - exp_labels: {severity: page, pod: a}
""",
    "wrong_value": """\
rule_files: [rules.yml]
tests:
  - interval: 1m
    input_series:
      - series: 'x{pod="a"}'
        values: '0.1+0.1x3'
    promql_expr_test:
      - expr: x:double
        eval_time: 2m
        exp_samples:
          - labels: 'x:double{pod="a"}'
            value: 0.6
      - expr: x
        eval_time: 2m
        exp_samples: []
""",
    "eval_error": """\
rule_files: [rules.yml]
tests:
  - interval: 1m
    input_series:
      - series: 'x{pod="a"}'
        values: '5'
      - series: 'x:double{pod="a"}'
        values: '5'
    alert_rule_test:
      - eval_time: 0m
        alertname: High
        exp_alerts: []
""",
    "no_alertname": """\
rule_files: [rules.yml]
tests:
  - name: t
    alert_rule_test:
      - eval_time: 5m
        exp_alerts: []
""",
    "empty_eval_time": """\
rule_files: [rules.yml]
tests:
  - interval: 1m
    promql_expr_test:
      - expr: x
        eval_time: ''
        exp_samples: []
""",
    "unknown_field": """\
rule_files: [rules.yml]
tests:
  - interval: 1m
    input: []
""",
    "repeated_group": """\
rule_files: [rules.yml, none*.yml]
group_eval_order: [g, g]
tests: []
""",
}


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(FAILING))
def test_failures_read_as_promtool_prints_them(tmp_path: Path, name: str) -> None:
    """A failing file exits 1 from both, with the same text on the same streams."""
    (tmp_path / "rules.yml").write_text(RULES, encoding="utf-8")
    path = tmp_path / f"{name}.yml"
    path.write_text(FAILING[name], encoding="utf-8")
    real = promtool(path)
    code, out, err = sidecar(path)
    assert (code, out, err) == (real.returncode, real.stdout, real.stderr)
    assert code == 1


def test_failure_text(tmp_path: Path) -> None:
    """The report of a failed alert check, word for word."""
    (tmp_path / "rules.yml").write_text(RULES, encoding="utf-8")
    path = tmp_path / "wrong_alert.yml"
    path.write_text(FAILING["wrong_alert"], encoding="utf-8")
    code, out, err = sidecar(path)
    assert code == 1
    assert out == f"Unit Testing:  {path}\n\n\n\n"
    assert err == (
        "  FAILED:\n"
        "    name: high,\n"
        "    alertname: High, time: 0s, \n"
        "        exp:[\n"
        "            0:\n"
        '              Labels:{alertname="High", pod="a", severity="page"}\n'
        "              Annotations:{}\n"
        "            ], \n"
        "        got:[]\n"
        "    name: high,\n"
        "    alertname: High, time: 1m, \n"
        "        exp:[\n"
        "            0:\n"
        '              Labels:{alertname="High", pod="b", severity="page"}\n'
        '              Annotations:{summary="5 on a"}\n'
        "            ], \n"
        "        got:[\n"
        "            0:\n"
        '              Labels:{alertname="High", pod="a", severity="page"}\n'
        '              Annotations:{summary="5 on a"}\n'
        "            ]\n"
    )


def test_value_mismatch_and_eval_error_text(tmp_path: Path) -> None:
    """Expression and evaluation failures print Go's E-notation and promtool's line shapes."""
    (tmp_path / "rules.yml").write_text(RULES, encoding="utf-8")
    for name in ("wrong_value", "eval_error"):
        (tmp_path / f"{name}.yml").write_text(FAILING[name], encoding="utf-8")
    assert sidecar(tmp_path / "wrong_value.yml")[2] == (
        "  FAILED:\n"
        '    expr: "x:double", time: 2m,\n'
        '        exp: {__name__="x:double", pod="a"} 6E-01\n'
        '        got: {__name__="x:double", pod="a"} 6.000000000000001E-01\n'
        '    expr: "x", time: 2m,\n'
        "        exp: nil\n"
        '        got: {__name__="x", pod="a"} 3.0000000000000004E-01\n'
    )
    assert sidecar(tmp_path / "eval_error.yml")[2] == (
        "  FAILED:\n    rule: x:double, time: 0s, err: duplicate sample for timestamp\n"
    )


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    """A missing test file or rule file is reported, never raised."""
    assert sidecar(tmp_path / "nope.yml") == (
        1,
        f"Unit Testing:  {tmp_path / 'nope.yml'}\n\n\n",
        f"  FAILED:\nopen {tmp_path / 'nope.yml'}: no such file or directory\n",
    )
    path = tmp_path / "t.yml"
    path.write_text("rule_files: [missing.yml]\ntests: [{interval: 1m}]\n", encoding="utf-8")
    assert sidecar(path) == (
        0,
        f"Unit Testing:  {path}\n  SUCCESS\n\n",
        f"  WARNING: no file match pattern {tmp_path / 'missing.yml'}\n",
    )


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("1 2 3", [1.0, 2.0, 3.0]),
        ("1+1x3", [1.0, 2.0, 3.0, 4.0]),
        ("10-2.5x2", [10.0, 7.5, 5.0]),
        ("-1-1x1", [-1.0, -2.0]),
        ("5x2", [5.0, 5.0, 5.0]),
        ("_ 1 _x2 2", [None, 1.0, None, None, 2.0]),
        ("1e3 .5 +2 010 08", [1000.0, 0.5, 2.0, 8.0, 8.0]),
        ("0.1+0.1x2", [0.1, 0.2, 0.30000000000000004]),
        ("Inf -Inf", [math.inf, -math.inf]),
    ],
)
def test_series_values(text: str, want: list[float | None]) -> None:
    """Series notation expands as PromQL's series description grammar, step by float step."""
    assert parse_values(text) == want


def test_series_stale_nan_and_errors() -> None:
    """`stale` is the staleness marker, NaN is NaN; malformed items are clear errors."""
    stale, nan = parse_values("stale NaN")
    assert stale is not None
    assert is_stale(stale)
    assert nan is not None
    assert math.isnan(nan)
    assert not is_stale(nan)
    with pytest.raises(RuleError) as info:
        parse_values("1 2y")
    assert (
        str(info.value) == 'invalid series value \'2y\': expected e.g. "1", "1+2x3", "_x2", "stale"'
    )
    with pytest.raises(RuleError) as info:
        parse_values("1x2000000")
    assert str(info.value) == "series expands to more than 1000000 values"


def test_metric_notation() -> None:
    """A name, a label set, or both; quoted values with Go escapes; nothing else after."""
    assert parse_metric('up{job="a\\"b", x=\'y\'}') == (
        ("__name__", "up"),
        ("job", 'a"b'),
        ("x", "y"),
    )
    assert parse_metric('{__name__="up", a=`r\\aw`}') == (("__name__", "up"), ("a", "r\\aw"))
    assert parse_metric("up") == (("__name__", "up"),)
    assert parse_metric("{}") == ()
    assert parse_metric("") == ()  # promtool reads a missing `labels` as no labels
    for bad, message in [
        ('up{a=~"x"}', '1:5: parse error: unexpected <op:=~> in label set, expected "="'),
        ("up{a=x}", '1:6: parse error: unexpected identifier "x" in label set, expected string'),
        ("up 1", '1:4: parse error: unexpected number "1"'),
        ('up{a="\\xZZ"}', 'invalid escape \\x in "\\xZZ"'),
        ('up{a="\\400"}', 'invalid escape \\400 in "\\400"'),
        ('up{a="\\U00110000"}', 'invalid escape \\U00110000 in "\\U00110000"'),
    ]:
        with pytest.raises(RuleError) as info:
            parse_metric(bad)
        assert str(info.value) == message


@given(st.text(alphabet="up{}=~,\"'`\\ xuU07_", max_size=30))
def test_hostile_metric_notation_never_crashes(text: str) -> None:
    """Any text either parses to sorted labels or fails with RuleError."""
    try:
        labels = parse_metric(text)
    except RuleError:
        return
    assert list(labels) == sorted(labels)


def test_an_empty_eval_time_fails_as_in_promtool(tmp_path: Path) -> None:
    """An explicit '' eval_time is Prometheus's empty duration, not zero."""
    (tmp_path / "rules.yml").write_text(RULES, encoding="utf-8")
    path = tmp_path / "empty_eval_time.yml"
    path.write_text(FAILING["empty_eval_time"], encoding="utf-8")
    assert sidecar(path) == (
        1,
        f"Unit Testing:  {path}\n\n\n",
        "  FAILED:\nempty duration string\n",
    )


def _ours_and_promtool(ours: list[str], theirs: list[str]) -> None:
    """Both commands succeed and print the same standard output."""
    run = [
        subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        for argv in ([sys.executable, "-m", "sidecar", *ours], ["promtool", *theirs])
    ]
    assert [r.returncode for r in run] == [0, 0], run[0].stdout + run[0].stderr
    assert run[0].stdout == run[1].stdout


@pytest.mark.integration
def test_the_command_runs_every_file_as_promtool_does() -> None:
    """`leak-sidecar test-rules` on every test file at once prints what promtool prints."""
    files = [str(p) for p in TEST_FILES]
    _ours_and_promtool(["test-rules", *files], ["test", "rules", *files])


@pytest.mark.integration
def test_check_rules_command_accepts_the_shipped_pack() -> None:
    """`leak-sidecar check-rules rules/*.yml` agrees with `promtool check rules`."""
    pack = sorted(str(p) for p in (RULES_DIR.parent.parent / "rules").glob("*.yml"))
    _ours_and_promtool(["check-rules", *pack], ["check", "rules", *pack])
