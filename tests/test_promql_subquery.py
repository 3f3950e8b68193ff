"""Subqueries ``expr[range:step]``: step alignment, the default step, ``@`` and ``offset``,
errors, retention, and the default step reaching rules. (Exact values against promtool are
in tests/rules/expr_subquery.yml.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from promql_support import load, values

from sidecar.core.config import RulesConfig
from sidecar.rules.alerting import RecordingRule
from sidecar.rules.engine import eval_group
from sidecar.rules.files import load_rules
from sidecar.rules.groups import build_groups, runtime_groups
from sidecar.rules.promql import SUBQUERY_STEP_MS, PromQLError, compile_expr, query_vector
from sidecar.store import Store

S = 1000
M = 60 * S


def test_steps_are_aligned_to_absolute_time() -> None:
    """The steps are the multiples of the step inside the window, not offsets from now."""
    store = load({"x": "0+1x20"}, 10 * S)
    # At 65s: 20s, 40s, 60s. At 60s: 0s...60s, both ends included.
    assert values("sum_over_time(x[1m:20s])", store, 65 * S) == {"": 2.0 + 4.0 + 6.0}
    assert values("sum_over_time(x[1m:20s])", store, 60 * S) == {"": 0.0 + 2.0 + 4.0 + 6.0}


def test_default_step_is_given_by_the_caller() -> None:
    """A subquery without a step steps by ``subquery_step_ms`` (Prometheus's global
    evaluation interval); Prometheus's default of 1m when none is given."""
    store = load({"x": "0+1x100"}, 10 * S)
    q = compile_expr("count_over_time(x[5m:])")
    assert [s.value for s in q.evaluate(store, 10 * M)] == [6.0]  # type: ignore[union-attr]
    assert SUBQUERY_STEP_MS == M
    got = q.evaluate(store, 10 * M, subquery_step_ms=15 * S)
    assert [s.value for s in got] == [21.0]  # type: ignore[union-attr]
    assert (
        query_vector("count_over_time(x[5m:])", store, 10 * M, subquery_step_ms=30 * S)[0].value
        == 11.0
    )


def test_at_start_inside_a_subquery_is_the_query_time() -> None:
    """``@ start()`` inside a subquery reads at the query's time, not at each step."""
    store = load({"x": "0+1x100"}, 10 * S)
    # Four steps, each reading x at 300s (30), not at the steps' times.
    assert values("sum_over_time((x @ start())[30s:10s] @ 100)", store, 300 * S) == {"": 120.0}
    assert values("sum_over_time(vector(time())[30s:10s] @ 100)", store, 300 * S) == {
        "": 70.0 + 80.0 + 90.0 + 100.0
    }


def test_offset_and_at_move_the_window() -> None:
    """``offset`` and ``@`` on the subquery set the window's end; steps stay aligned."""
    store = load({"x": "0+1x100"}, 10 * S)
    # Ends at 500s - 13s = 487s: steps 440, 460, 480.
    assert values("sum_over_time(x[1m:20s] offset 13s)", store, 500 * S) == {"": 138.0}
    assert values("sum_over_time(x[1m:20s] @ 487)", store, 900 * S) == {"": 138.0}
    assert values("sum_over_time(x[1m:20s] offset -13s)", store, 474 * S) == {"": 138.0}


def test_dropping_the_name_can_collide() -> None:
    """Series that differ only by name, at different steps, collide once the function
    drops the name: Prometheus's same-labelset error; ``last_over_time`` keeps the name."""
    store = load({'a{k="1"}': "1 2 _ _", 'b{k="1"}': "_ _ 3 4"}, 10 * S)
    with pytest.raises(
        PromQLError, match=r"^vector cannot contain metrics with the same labelset$"
    ):
        query_vector('count_over_time({__name__=~"a|b"}[1m:10s])', store, 30 * S)
    assert values('last_over_time({__name__=~"a|b"}[1m:10s])', store, 30 * S) == {
        "__name__=a,k=1": 2.0,
        "__name__=b,k=1": 4.0,
    }


def test_absent_over_time_of_a_subquery_has_no_labels() -> None:
    """As in 2.42, the label matchers of the inner selector do not label the result."""
    store = load({"x": "1"}, 10 * S)
    assert values('absent_over_time(nothing{job="a"}[1m:10s])', store, 0) == {"": 1.0}
    assert values("absent_over_time(x[1m:10s])", store, 0) == {}


def test_retention_covers_nested_ranges() -> None:
    """The store keeps the subquery's range plus offset plus what the inner expression
    reads back from the first step."""
    assert compile_expr("max_over_time(x[10m:1m])").max_range_ms == 10 * M
    assert compile_expr("max_over_time(rate(x[5m])[10m:1m] offset 1h)").max_range_ms == 75 * M
    nested = "max_over_time(max_over_time(rate(x[2m])[10m:])[30m:5m]) + rate(y[1h])"
    assert compile_expr(nested).max_range_ms == 60 * M
    assert compile_expr("max_over_time(max_over_time(rate(x[2m])[10m:])[30m:5m])").max_range_ms == (
        42 * M
    )


RULES = """\
groups:
  - name: g
    interval: 1m
    rules:
      - record: steps
        expr: count_over_time(x[1m:])
"""


def test_rules_step_by_the_global_evaluation_interval(tmp_path: Path) -> None:
    """A rule's subquery without a step uses the default (global) evaluation interval,
    not its group's interval, as Prometheus does; promtool passes its own."""
    path = tmp_path / "rules.yml"
    path.write_text(RULES, encoding="utf-8")
    specs = load_rules([str(path)])
    (group,) = runtime_groups(specs, RulesConfig.validate({"evaluation_interval": "15s"}))
    (explicit,) = build_groups(specs, M, {}, "", restored=True, subquery_step_ms=20 * S)
    got = {}
    for name, g in (("global", group), ("explicit", explicit)):
        store = Store(retention_ms=3_600_000, max_series=100)
        for i in range(20):
            store.ingest(i * 10 * S, {(("__name__", "x"),): float(i)})
        rule = g.rules[0]
        assert isinstance(rule, RecordingRule)
        eval_group(g, store, 3 * M)
        got[name] = rule.last_value
    assert got == {"global": 5.0, "explicit": 4.0}


def test_at_window_slides_where_prometheus_re_evaluates_it() -> None:
    """2.42's quirk: inside a subquery, ``predict_linear(x[30s] @ 100, 0)`` slides its
    window with the step over only the samples of [70s, 100s]; ``rate`` of the same
    range is evaluated once and stays at 100s."""
    store = load({"x": "0+1x100"}, 10 * S)
    # Steps 270..300s: windows end at 100, 110, 120, 130s; the last holds one sample.
    assert values("sum_over_time(predict_linear(x[30s] @ 100, 0)[30s:10s])", store, 300 * S) == {
        "": 27.0 + 28.0 + 29.0
    }
    assert values("sum_over_time(rate(x[30s] @ 100)[30s:10s])", store, 300 * S) == {"": 0.4}


def test_aggregation_parameter_is_taken_at_the_first_step() -> None:
    """2.42's quirk: ``topk(scalar(k), x @ 100)`` reads only ``@`` times, so inside a
    subquery its ``k`` is the one at the subquery's first step, for every step."""
    store = load({'x{a="1"}': "1+1x30", 'x{a="2"}': "5+2x30", "k": "0+0.1x30"}, 10 * S)
    # Steps 140s..200s; k is 1.4 at 140s (topk 1) though 2 at 200s (topk 2).
    assert values("sum_over_time(topk(scalar(k), x @ 100)[1m:10s])", store, 200 * S) == {
        "a=2": 7 * 25.0
    }
    # Without @ the aggregation follows each step's k.
    assert values("count_over_time(topk(scalar(k), x)[1m:10s])", store, 200 * S) == {
        "a=1": 1.0,
        "a=2": 7.0,
    }
