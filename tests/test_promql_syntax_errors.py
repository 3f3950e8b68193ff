"""Syntax errors read as promtool prints them: position and words, for rule expressions,
input series and expected-sample labels; an expected sample without labels is accepted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from sidecar.rules.promql import PromQLError, compile_expr
from sidecar.rules.promql.series_syntax import explain_series
from sidecar.rules.promql.syntax_errors import explain, explain_metric

# Each refused by Prometheus 2.42; the differential test asks promtool for its words.
BAD = [
    "test +", "sum(", 'foo{a="b" 0}', "rate(x)", "foo{", "1 +* 2", "x[5m", "foo bar",
    "sum by (a) b", "foo{a=}", "foo{a b}", "foo offset", "rate(x[5m],)", "nofunc(x)",
    "x[5x]", "1x", "foo}", "x)", '"abc', "x @ foo", "sum(x) by", "a !b", "up == on(a b) x",
    "sum(rate(x[5m]) by (job)", "a +", "(a", "a[5m] + 1", 'label_replace(x, 1, "a", "b", "c")',
    "histogram_quantile(x, y)", "a and", "topk(x)", "abs(x, y)", "x[1m:1m",
    'foo{a=~"b" , c}', '1 + foo{a="x",b="y" c="z"}', "vector(1) / on() group_left(a b) x",
    "rate(x[5m]) >", "max(x[5m])", "x > bool", "time(1)", "round(x, 1, 2)", "hour(x, y)",
    "label_join(x)", "sum(x, y)", "topk(1, x[5m])", "rate(x[5m] offset)", '"a" + "b"', '-"a"',
    "x == ignoring (a) y )", "count_values(1, x)", 'foo{__name__="a"}[5]', "x @ start",
    "sum(x) without (a b)", "x{a=~}", "x[5m:1m:1m]", "1 + (2 *)", "rate(x[5m]", "x # c\n+",
    "a\n  + * b", "x{a='b}", "x{a=\"b\"} @", "5m", "-5s", "x + 1h", "x offset 5", "x[5m:1]",
    "x @ -Inf", "x @ NaN", "x @ 1e19", "sum(x) @ -Inf",
]  # fmt: skip

OK = [
    "up", 'sum by (le) (rate(x_bucket[5m]))', "x @ start()", "x offset -5m", "-x ^ 2",
    "max_over_time(rate(x[5m])[10m:1m])", 'label_join(x, "a", ",", "b", "c")', "hour()",
    "round(x)", "1 + - 2", "x and on() y", "start", "sum(offset)", 'count_values("v", x)',
    "authorization-and-basic", "time() - pi()", 'label_join(x, "a", ",")',
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("test +", "1:7: parse error: unexpected end of input"),
        ("foo bar", '1:5: parse error: unexpected identifier "bar"'),
        ("sum(", "1:5: parse error: unclosed left parenthesis"),
        ("a\n  + * b", "2:5: parse error: unexpected <op:*>"),
    ],
)
def test_a_syntax_error_carries_prometheus_words(text: str, message: str) -> None:
    """The compile error is Prometheus's message with its line:column."""
    with pytest.raises(PromQLError) as info:
        compile_expr(text)
    assert info.value.message == message


@pytest.mark.parametrize("text", ["5m", "x + 1h", "x offset 5", "max_over_time(x[5m:1])"])
def test_durations_as_numbers_are_refused_as_in_2_42(text: str) -> None:
    """Prometheus 3 reads `5m` as a number; promql-parser does too; 2.42 refuses it."""
    with pytest.raises(PromQLError, match="parse error: unexpected "):
        compile_expr(text)


@pytest.mark.parametrize("text", OK)
def test_valid_expressions_are_not_explained(text: str) -> None:
    """The error reader finds nothing wrong in what Prometheus accepts."""
    assert explain(text) is None


def test_metric_errors() -> None:
    """Series descriptions and sample labels fail with ParseMetric's words."""
    assert explain_metric('up{job="a" 0}') == (
        "1:12: parse error: unexpected character inside braces: '0'"
    )
    assert explain_metric('{a!="b"}') == (
        '1:3: parse error: unexpected <op:!=> in label set, expected "="'
    )
    assert explain_metric("") is None


def _promtool_check(tmp_path: Path, texts: list[str]) -> dict[int, str]:
    doc = {"groups": [{"name": "g", "rules": [
        {"record": f"r{i}", "expr": t} for i, t in enumerate(texts)]}]}  # fmt: skip
    (tmp_path / "bad.yml").write_text(yaml.safe_dump(doc))
    result = subprocess.run(
        ["promtool", "check", "rules", "bad.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    got = {}
    for line in (result.stdout + result.stderr).splitlines():
        m = re.search(r'rule (\d+), "r\d+": could not parse expression: (.*)', line)
        if m:
            got[int(m.group(1)) - 1] = m.group(2)
    return got


@pytest.mark.integration
def test_promtool_reports_the_same_errors(tmp_path: Path) -> None:
    """For every refused expression, the message is promtool's, position included."""
    theirs = _promtool_check(tmp_path, BAD)
    assert len(theirs) == len(BAD)
    mismatches = [(t, explain(t), theirs[i]) for i, t in enumerate(BAD) if explain(t) != theirs[i]]
    assert mismatches == []


@pytest.mark.integration
def test_promtool_accepts_the_valid_ones(tmp_path: Path) -> None:
    """The expressions the error reader passes are valid to promtool too."""
    assert _promtool_check(tmp_path, OK) == {}


_TESTS = """\
rule_files: []
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="a"}'
        values: '1 2'
      - series: 'x'
        values: '3'
    promql_expr_test:
      - expr: sum(x)
        eval_time: 0m
        exp_samples:
          - value: 3
      - expr: sum(up)
        eval_time: 0m
        exp_samples:
          - value: 1
            labels: '{}'
      - expr: sum(up)
        eval_time: 0m
        exp_samples:
          - value: 1
            labels: ''
      - expr: up
        eval_time: 0m
        exp_samples:
          - value: 1
            labels: 'up{job="a" x}'
      - expr: 'test +'
        eval_time: 0m
        exp_samples:
          - value: 1
  - interval: 1m
    input_series:
      - series: 'up{job="a" 0}'
        values: '1 2'
"""


@pytest.mark.integration
def test_test_rules_prints_what_promtool_prints(tmp_path: Path) -> None:
    """Samples without labels pass; bad labels, expressions and series fail in promtool's words."""
    path = tmp_path / "t.yml"
    path.write_text(_TESTS)
    real = subprocess.run(
        ["promtool", "test", "rules", "t.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    ours = subprocess.run(
        [sys.executable, "-m", "sidecar", "test-rules", "t.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (ours.returncode, ours.stdout, ours.stderr) == (1, real.stdout, real.stderr)
    assert "1:12: parse error: unexpected character inside braces: '0'" in real.stderr
    assert 'expr: "sum(x)"' not in real.stderr


@given(st.text(alphabet="ab(){}[]:,=\"+-*^ 15m@#\n'`", max_size=30))
def test_the_error_reader_never_crashes(text: str) -> None:
    """Any text gets a Prometheus-style message or None, never an exception."""
    message = explain(text)
    assert message is None or " parse error: " in message
    assert explain_metric(text) is None or " parse error: " in str(explain_metric(text))


BAD_SERIES = [
    ("up", "1 2 x"), ("up", "1+"), ("up", "a"), ("up", "1x"), ("up", "1 _x"), ("up", "1e"),
    ("up", "--1"), ("up", "1 !"), ("up", '"a"'), ("up", "1 2 # c"), ("up", "1_0"),
    ("up", "0x1f"), ("up", "1+1x2y"), ("up", "_x2x3"), ("up", "1x1.5"), ("up", "1+stale"),
    ("up", "stalex2"), ("up", "_1"), ("up", "1x2+1"), ("up", "1-1"), ("up", "_x_"),
    ("up", "1 é"), ('up{job="a" 0}', "1"), ('up{a="b}', "1"), ("up {a=\"b\"}", "1"),
    ('{__name__="up",a=~"b"}', "1"), ("up", "1e999"), ("up", "1 2 3x"),
]  # fmt: skip
GOOD_SERIES = [
    ("up", "1 2 3 "), ("up", " 1"), ("up", "stale+1x2"), ("up", "-1+1x3"), ("up", "Inf -Inf NaN"),
    ("up", "_ _x2 1e5x2 .5 5."), ('up{a="b"}', "010 1+1x2 3-1x2"),
]  # fmt: skip


@pytest.mark.integration
def test_input_series_errors_read_as_promtool_prints_them(tmp_path: Path) -> None:
    """Each bad series (name, label set or values) fails its test group in promtool's words."""
    groups = [
        {"interval": "1m", "input_series": [{"series": s, "values": v}], "promql_expr_test": []}
        for s, v in BAD_SERIES + GOOD_SERIES
    ]
    (tmp_path / "t.yml").write_text(yaml.safe_dump({"rule_files": [], "tests": groups}))
    runs = [
        subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
        for argv in (
            ["promtool", "test", "rules", "t.yml"],
            [sys.executable, "-m", "sidecar", "test-rules", "t.yml"],
        )
    ]
    real, ours = runs
    assert real.stderr.count("parse error") == len(BAD_SERIES)
    assert (ours.returncode, ours.stdout, ours.stderr) == (1, real.stdout, real.stderr)


@given(st.text(max_size=20), st.text(alphabet="12x+-_ .e\"{}=a\\'é", max_size=20))
def test_the_series_reader_never_crashes(series: str, values: str) -> None:
    """Any series and values get a Prometheus-style message or None, never an exception."""
    message = explain_series(series, values)
    assert message is None or " parse error: " in message


@given(st.text(max_size=30))
def test_the_error_reader_never_crashes_on_any_text(text: str) -> None:
    """Unicode digits and letters, control characters: a message or None, never a crash."""
    message = explain(text)
    assert message is None or " parse error: " in message
