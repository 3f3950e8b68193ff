"""Instant-query semantics of the embedded evaluator: selection, windows, range functions.

Expected values are written as the arithmetic Prometheus 2.42 performs (same operations,
same order), so an assertion of exact equality checks the float bits.
"""

from __future__ import annotations

import math

import pytest
from promql_support import load, values

from sidecar.core.model import STALE_NAN
from sidecar.rules.promql import LOOKBACK_MS, Query, Sample, compile_expr, query_vector
from sidecar.store import Store

M = 60_000  # one minute in ms


def test_vector_selector_returns_labels_with_name_and_latest_value() -> None:
    """An instant selector returns each series' newest sample with all labels."""
    store = load({'up{job="a"}': "1 2 3", 'up{job="b"}': "7"})
    assert compile_expr("up").evaluate(store, 2 * M) == [
        Sample((("__name__", "up"), ("job", "a")), 3.0),
        Sample((("__name__", "up"), ("job", "b")), 7.0),
    ]


def test_lookback_is_inclusive_at_exactly_five_minutes() -> None:
    """A sample exactly 5m old is returned; one millisecond later it is gone."""
    store = load({"x": "4"})
    q = compile_expr("x")
    assert [s.value for s in q.evaluate(store, LOOKBACK_MS)] == [4.0]  # type: ignore[union-attr]
    assert q.evaluate(store, LOOKBACK_MS + 1) == []


def test_lookback_can_be_set_per_query() -> None:
    """A query compiled with a shorter lookback forgets samples sooner."""
    store = load({"x": "4"})
    assert Query("x", lookback_ms=30_000).evaluate(store, 30_001) == []


def test_stale_marker_ends_a_series_at_once() -> None:
    """The newest sample being a staleness marker means no value, even within lookback."""
    store = load({'x{a="1"}': "1 2 stale", 'x{a="2"}': "5 5 5"})
    assert values("x", store, 2 * M) == {"__name__=x,a=2": 5.0}
    assert values("x", store, 2 * M - 1) == {"__name__=x,a=1": 2.0, "__name__=x,a=2": 5.0}


def test_stale_markers_are_dropped_from_range_windows() -> None:
    """count_over_time skips staleness markers and still counts the samples around them."""
    store = load({"x": "1 2 stale 4 5"})
    assert values("count_over_time(x[10m])", store, 4 * M) == {"": 4.0}


def test_range_window_is_closed_at_both_ends() -> None:
    """[t - range, t] includes a sample exactly at t - range."""
    store = load({"x": "1 2 3"})
    assert values("count_over_time(x[2m])", store, 2 * M) == {"": 3.0}
    assert values("count_over_time(x[2m])", store, 2 * M + 1) == {"": 2.0}


def test_rate_extrapolates_to_window_edges_like_prometheus() -> None:
    """rate: samples at 1m..5m in a 5m window ending at 5m30s extrapolate by half a step
    at the start and by the 30s gap at the end."""
    store = load({"c": "0+10x5"})  # 0,10,...,50 at 0..5m
    got = values("rate(c[5m])", store, 5 * M + 30_000)[""]
    # first sample 10 @60s, last 50 @300s; range [30s, 330s]
    result, sampled, avg = 40.0, 240.0, 240.0 / 4
    to_start = min(30.0, sampled * (10.0 / result))  # zero point at 60s
    interval = sampled + (to_start if to_start < avg * 1.1 else avg / 2)
    to_end = 30.0
    interval += to_end if to_end < avg * 1.1 else avg / 2
    factor = interval / sampled
    factor /= 300.0
    assert got == result * factor


def test_increase_stops_extrapolation_at_the_counter_zero_point() -> None:
    """A counter starting near zero is not extrapolated below zero."""
    store = load({"c": "_ 2 12 22 32"})
    got = values("increase(c[4m])", store, 4 * M)[""]
    result, sampled = 30.0, 180.0
    to_start = sampled * (2.0 / result)  # 12s: shorter than the 60s to the window start
    interval = sampled + to_start + 0.0
    assert got == result * (interval / sampled)


def test_counter_reset_adds_the_value_before_the_reset() -> None:
    """increase over 10, 20, 5, 15 counts 10 + 20 + 10 (the drop to 5 is a reset)."""
    store = load({"c": "10 20 5 15"})
    got = values("increase(c[3m])", store, 3 * M)[""]
    assert got == (15.0 - 10.0 + 20.0) * (180.0 / 180.0)
    assert values("resets(c[3m])", store, 3 * M) == {"": 1.0}


def test_delta_does_not_treat_drops_as_resets() -> None:
    """delta is last minus first, extrapolated, with no counter logic."""
    store = load({"g": "10 20 5 15"})
    assert values("delta(g[3m])", store, 3 * M) == {"": 5.0}


def test_rate_needs_two_samples() -> None:
    """A series with one sample in range produces nothing."""
    store = load({'c{a="1"}': "1", 'c{a="2"}': "1 2"})
    assert values("rate(c[1m])", store, M) == {"a=2": (1.0 * (60.0 / 60.0)) / 60.0}


def test_irate_and_idelta_use_the_last_two_samples() -> None:
    """irate treats a drop as a reset; idelta does not."""
    store = load({"c": "5 9 3"})
    assert values("irate(c[5m])", store, 2 * M) == {"": 3.0 / (60_000 / 1000)}
    assert values("idelta(c[5m])", store, 2 * M) == {"": -6.0}


def test_deriv_is_the_least_squares_slope() -> None:
    """deriv of a line rising 10 per minute is 1/6 per second."""
    store = load({"g": "0+10x10"})
    assert values("deriv(g[5m])", store, 10 * M) == {"": 0.16666666666666666}


def test_predict_linear_extrapolates_from_the_evaluation_time() -> None:
    """predict_linear uses the fitted value at the evaluation time as intercept."""
    store = load({"g": "0+10x10"})
    assert values("predict_linear(g[5m], 60)", store, 10 * M) == {"": 110.0}
    # 30s after the last sample the intercept moves on by 5.
    assert values("predict_linear(g[5m], 0)", store, 10 * M + 30_000) == {"": 105.0}


def test_deriv_of_a_constant_series_is_zero() -> None:
    """The constY shortcut: slope 0 for a flat window."""
    store = load({"g": "3x10"})
    assert values("deriv(g[5m])", store, 10 * M) == {"": 0.0}
    assert values("predict_linear(g[5m], 600)", store, 10 * M) == {"": 3.0}


def test_avg_over_time_uses_the_incremental_mean() -> None:
    """avg_over_time of 1, 2, 4 is 7/3 as Prometheus's Kahan-compensated running mean gives it."""
    store = load({"g": "1 2 4"})
    mean = c = 0.0
    for i, v in enumerate([1.0, 2.0, 4.0], start=1):
        inc = v / i - mean / i
        s = mean + inc
        c += (mean - s) + inc if abs(mean) >= abs(inc) else (inc - s) + mean
        mean = s
    assert values("avg_over_time(g[2m])", store, 2 * M) == {"": mean + c}


def test_avg_over_time_with_infinity_keeps_the_infinity() -> None:
    """An infinite sample makes the mean infinite rather than NaN."""
    store = load({"g": "1 Inf 3"})
    assert values("avg_over_time(g[2m])", store, 2 * M) == {"": math.inf}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("min_over_time(g[5m])", 1.0),
        ("max_over_time(g[5m])", 9.0),
        ("sum_over_time(g[5m])", 23.0),
        ("count_over_time(g[5m])", 5.0),
        ("last_over_time(g[5m])", 2.0),
        ("quantile_over_time(0.5, g[5m])", 3.0),
        ("quantile_over_time(0.25, g[5m])", 2.0),
        ("changes(g[5m])", 4.0),
        ("present_over_time(g[5m])", 1.0),
        ("resets(g[5m])", 2.0),
    ],
)
def test_over_time_functions(expr: str, expected: float) -> None:
    """Aggregations over a window of 3, 1, 8, 9, 2 (plus an older 7 outside it)."""
    store = load({"g": "7 3 1 8 9 2"})
    got = values(expr, store, 5 * M + 30_000)
    assert got == {"__name__=g" if expr.startswith("last") else "": expected}


def test_last_over_time_keeps_the_metric_name() -> None:
    """last_over_time acts like an offset, so the name stays."""
    store = load({"g": "1 2"})
    assert values("last_over_time(g[5m])", store, M) == {"__name__=g": 2.0}


def test_offset_and_at_move_the_window() -> None:
    """offset looks back; @ pins the evaluation time; start()/end() are the query time."""
    store = load({"g": "0+1x10"})
    assert values("g offset 3m", store, 10 * M) == {"__name__=g": 7.0}
    assert values("g @ 120", store, 10 * M) == {"__name__=g": 2.0}
    assert values("g @ 180 offset 1m", store, 10 * M) == {"__name__=g": 2.0}
    assert values("g @ end()", store, 4 * M) == {"__name__=g": 4.0}
    assert values("g offset -1m", store, 4 * M) == {"__name__=g": 5.0}
    assert values("sum_over_time(g[1m] @ 300)", store, 10 * M) == {"": 9.0}


def test_timestamp_of_a_selector_is_the_sample_time() -> None:
    """timestamp(x) is the sample's time; timestamp of a computed vector is the query time."""
    store = load({"g": "1 _ _"})
    assert values("timestamp(g)", store, 2 * M) == {"": 0.0}
    assert values("timestamp(-g)", store, 2 * M) == {"": 120.0}


def test_absent_and_absent_over_time_label_from_equality_matchers() -> None:
    """absent() returns 1 with the equality-matched labels when nothing matches."""
    store = load({'g{a="1"}': "1"})
    assert values('absent(nope{job="x", env=~"p.*", a="1"})', store, 0) == {"a=1,job=x": 1.0}
    assert values('absent(g{a="1"})', store, 0) == {}
    assert values('absent_over_time(g{a="1"}[1m])', store, 2 * M) == {"a=1": 1.0}
    assert values('absent_over_time(g{a="1"}[1m])', store, M) == {}


def test_regex_matchers_are_anchored() -> None:
    """=~ must match the whole value, !~ excludes whole matches; a missing label is ""."""
    store = load({'g{a="abc"}': "1", 'g{a="b"}': "2", "g": "3"})
    assert values('g{a=~"b"}', store, 0) == {"__name__=g,a=b": 2.0}
    assert values('g{a!~"b|"}', store, 0) == {"__name__=g,a=abc": 1.0}
    assert values('g{a=""}', store, 0) == {"__name__=g": 3.0}
    assert values('g{a=~"(?i)ABC"}', store, 0) == {"__name__=g,a=abc": 1.0}
    assert values('{__name__=~"g", a!="abc"}', store, 0) == {
        "__name__=g,a=b": 2.0,
        "__name__=g": 3.0,
    }


def test_selector_cache_follows_new_and_recreated_series() -> None:
    """A compiled selector sees series added after its first evaluation, and a series
    that expired and was created again."""
    store = Store(retention_ms=10 * M, max_series=100)
    q = compile_expr("sum(g)")
    a1 = (("__name__", "g"), ("a", "1"))
    store.ingest(0, {a1: 1.0}, origin="o1")
    assert q.evaluate(store, 0) == [Sample((), 1.0)]
    store.ingest(1000, {(("__name__", "g"), ("a", "2")): 2.0}, origin="o2")
    assert q.evaluate(store, 1000) == [Sample((), 3.0)]
    store.expire(10 * M + 500)  # a=1's only sample is past retention: the series goes
    assert store.get(a1) is None
    store.ingest(10 * M + 1000, {a1: 5.0}, origin="o1")
    store.ingest(10 * M + 1000, {(("__name__", "g"), ("a", "2")): 4.0}, origin="o2")
    assert q.evaluate(store, 10 * M + 1000) == [Sample((), 9.0)]


def test_scalar_result_is_a_float() -> None:
    """A scalar expression evaluates to a float, and query_vector wraps it like promtool."""
    store = Store(retention_ms=M, max_series=10)
    q = compile_expr("time() + 2 * 3")
    assert q.returns_scalar
    assert q.evaluate(store, 4_000) == 10.0
    assert query_vector("time()", store, 4_000) == [Sample((), 4.0)]


def test_max_range_ms_covers_range_plus_offset() -> None:
    """The store must keep the longest range plus its offset."""
    assert compile_expr("rate(x[5m] offset 10m) + deriv(y[15m])").max_range_ms == 15 * M
    assert compile_expr("x offset 20m").max_range_ms == 20 * M
    assert compile_expr("1").max_range_ms == 0


def test_nan_values_are_ordinary_values_not_staleness() -> None:
    """A plain NaN sample is returned; only the special staleness NaN hides a series."""
    store = Store(retention_ms=M, max_series=10)
    store.ingest(0, {(("__name__", "x"),): math.nan, (("__name__", "y"),): STALE_NAN}, origin="o")
    out = query_vector("x or y", store, 0)
    assert len(out) == 1
    assert out[0].labels == (("__name__", "x"),)
    assert math.isnan(out[0].value)


def test_counter_starting_at_zero_is_not_extrapolated_before_its_start() -> None:
    """A first sample of exactly 0 puts the zero point at that sample: no extrapolation."""
    store = load({"c": "_ 0 10 20"})
    assert values("increase(c[3m])", store, 3 * M) == {"": 20.0 * ((120.0 + 0.0 + 0.0) / 120.0)}


def test_resets_across_a_staleness_marker_compare_the_samples_around_it() -> None:
    """10, 20, stale, 5, 15: the marker is dropped and 20 -> 5 is one reset."""
    store = load({"c": "10 20 stale 5 15"})
    assert values("resets(c[5m])", store, 4 * M) == {"": 1.0}
    assert values("increase(c[4m])", store, 4 * M) == {"": (15.0 - 10.0 + 20.0) * (240.0 / 240.0)}
    assert values("changes(c[5m])", store, 4 * M) == {"": 3.0}
