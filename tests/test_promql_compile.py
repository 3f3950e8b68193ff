"""Compiling PromQL: syntax errors, the supported subset, and what is refused by name."""

from __future__ import annotations

import pytest

from sidecar.core.errors import RuleError
from sidecar.rules.promql import PromQLError, compile_expr, unsupported_constructs
from sidecar.rules.promql.gomath import go_exp, go_log, go_log2, go_log10, go_pow


def test_syntax_error_is_a_rule_error_with_the_expression() -> None:
    """A syntax error is Prometheus's message, with its position in the expression."""
    with pytest.raises(RuleError) as err:
        compile_expr("rate(x[5m]")
    assert isinstance(err.value, PromQLError)
    assert str(err.value) == "1:11: parse error: unclosed left parenthesis"
    assert err.value.expr == "rate(x[5m]"
    assert err.value.constructs == ()


def test_text_is_kept_as_written() -> None:
    """The query keeps the original text (the parser's printer does not round-trip)."""
    assert compile_expr("rate(x[500ms])  > 1").text == "rate(x[500ms])  > 1"


@pytest.mark.parametrize(
    ("expr", "constructs"),
    [
        ("limitk(1, x)", ["aggregation limitk (not a Prometheus 2.42 aggregation)"]),
        ("limit_ratio(0.5, x)", ["aggregation limit_ratio (not a Prometheus 2.42 aggregation)"]),
        ("mad_over_time(x[5m])", ["function mad_over_time (not a Prometheus 2.42 function)"]),
        ("info(x)", ["function info (not a Prometheus 2.42 function)"]),
        ('sort_by_label(x, "a")', ["function sort_by_label (not a Prometheus 2.42 function)"]),
        (
            "double_exponential_smoothing(x[5m], 0.5, 0.5)",
            ["function double_exponential_smoothing (not a Prometheus 2.42 function)"],
        ),
        (
            "histogram_fraction(0, 1, limitk(1, x))",
            ["aggregation limitk (not a Prometheus 2.42 aggregation)"],
        ),
        ('{"foo.bar"}', ['quoted metric name {"foo.bar"} (Prometheus 3 syntax)']),
        ('x{"a.b"="c"}', ["quoted label name 'a.b' (Prometheus 3 syntax)"]),
        ('x{"a"="c"}', ["quoted label or metric name (Prometheus 3 syntax)"]),
        ('sum by ("a") (x)', ["quoted label or metric name (Prometheus 3 syntax)"]),
        ('x{a="b" or a="c"}', ["`or` between label matchers (Prometheus 3 syntax)"]),
        ("x[5m:1m]", ["range vector as a result (a rule must return an instant vector or scalar)"]),
        ("x[5m]", ["range vector as a result (a rule must return an instant vector or scalar)"]),
        ('"text"', ["string result (a rule must return an instant vector or scalar)"]),
        (
            "limitk(1, mad_over_time(x[5m])) + max_over_time(limitk(1, x)[1m:])",
            [
                "function mad_over_time (not a Prometheus 2.42 function)",
                "aggregation limitk (not a Prometheus 2.42 aggregation)",
            ],
        ),
    ],
)
def test_unsupported_constructs_are_all_named(expr: str, constructs: list[str]) -> None:
    """Compiling refuses the expression and names every construct it cannot evaluate."""
    assert unsupported_constructs(expr) == constructs
    with pytest.raises(PromQLError) as err:
        compile_expr(expr)
    assert err.value.constructs == tuple(constructs)
    assert str(err.value) == f"cannot evaluate {expr!r}: not supported: {', '.join(constructs)}"


@pytest.mark.parametrize(
    "expr",
    [
        "rate(cache_keys_total[10m]) > 500",
        "avg_over_time(conn_pool_active[5m]) > 0.95 * conn_pool_max",
        "holt_winters(x[10m], 0.5, 0.5)",
        'label_replace(x, "a", "$1", "b", "(.*)")',
        'sum by (job) (rate(x{job=~"a|b"}[1h] offset 5m @ 1700000000))',
        "x @ start() + x @ end()",
        'count_values("v", x) or vector(1)',
        "sgn(deg(rad(x)))",
        "x atan2 y",
        "year(x) + pi() + time()",
        '{__name__="x"}',
        "sum(x) by (job)",
        'rate(x[5m]) # a comment with "quotes", {"braces"} and @ -5\n  > 1',
        "max_over_time(rate(x[1m])[5m:]) + rate(x[5m:1m] offset 1m @ start())",
    ],
)
def test_supported_expressions_compile(expr: str) -> None:
    """Everything in the documented subset compiles and has nothing unsupported."""
    assert unsupported_constructs(expr) == []
    assert compile_expr(expr).text == expr


def test_unsupported_constructs_raises_for_a_syntax_error() -> None:
    """A syntax error is not an 'unsupported construct': it is raised."""
    with pytest.raises(PromQLError, match=r"^1:5: parse error: unclosed left parenthesis$"):
        unsupported_constructs("sum(")


def test_go_math_matches_go_bit_for_bit() -> None:
    """Values printed by Go 1.19 on amd64 for math.Exp, Log, Log2, Log10, Pow."""
    assert go_exp(-3.7) == 0.024723526470339388
    assert go_log(3.0) == 1.0986122886681096
    assert go_log2(2.5) == 1.3219280948873622
    assert go_log10(2.5) == 0.3979400086720376
    assert go_pow(1.5, 2.7) == 2.988452789872502
    assert go_pow(0.0, -1.0) == float("inf")
    assert go_pow(-8.0, 1 / 3) != go_pow(-8.0, 1 / 3)  # NaN
    assert go_log(0.0) == float("-inf")
    assert go_exp(1000.0) == float("inf")
    assert go_exp(-1e10) == 0.0
