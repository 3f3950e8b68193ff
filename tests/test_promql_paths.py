"""The evaluator's fast paths give the same bits as a plain transcription of Prometheus's
Go code: compensated sums, the running mean, least squares, and the per-series index of
staleness markers and counter resets kept between evaluations."""

from __future__ import annotations

import math
from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.model import STALE_NAN
from sidecar.rules.promql import compile_expr
from sidecar.rules.promql.rangefuncs import RANGE_KERNELS, Env
from sidecar.rules.promql.regression import linear_regression
from sidecar.store import Store

_floats = st.one_of(
    st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
    st.integers(min_value=-(10**6), max_value=10**6).map(float),
    st.sampled_from([0.0, -0.0, 0.1, 1e-300, math.inf, -math.inf, math.nan]),
)
_windows = st.lists(st.tuples(st.integers(1, 5_000), _floats), min_size=2, max_size=60)


def _kahan_inc(inc: float, total: float, c: float) -> tuple[float, float]:
    t = total + inc
    if abs(total) >= abs(inc):
        c += (total - t) + inc
    else:
        c += (inc - t) + total
    return t, c


def _ref_regression(ts: list[int], vs: list[float], t0: int) -> tuple[float, float]:
    init_y = vs[0]
    const_y = all(v == init_y for v in vs[1:])
    if const_y:
        return (math.nan, math.nan) if math.isinf(init_y) else (0.0, init_y)
    n = sx = cx = sy = cy = sxy = cxy = sx2 = cx2 = 0.0
    for t, v in zip(ts, vs, strict=True):
        n += 1.0
        x = (t - t0) / 1e3
        sx, cx = _kahan_inc(x, sx, cx)
        sy, cy = _kahan_inc(v, sy, cy)
        sxy, cxy = _kahan_inc(x * v, sxy, cxy)
        sx2, cx2 = _kahan_inc(x * x, sx2, cx2)
    sx, sy, sxy, sx2 = sx + cx, sy + cy, sxy + cxy, sx2 + cx2
    cov = sxy - sx * sy / n
    var = sx2 - sx * sx / n
    slope = (
        cov / var
        if var != 0
        else (
            math.nan
            if cov == 0 or math.isnan(cov)
            else math.copysign(math.inf, cov) * math.copysign(1.0, var)
        )
    )
    return slope, sy / n - slope * sx / n


def _ref_avg(vs: list[float]) -> float:
    mean = c = count = 0.0
    for v in vs:
        count += 1
        if math.isinf(mean):
            if math.isinf(v) and (mean > 0) == (v > 0):
                continue
            if not math.isinf(v) and not math.isnan(v):
                continue
        mean, c = _kahan_inc(v / count - mean / count, mean, c)
    return mean if math.isinf(mean) else mean + c


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _series(window: list[tuple[int, float]]) -> tuple[array[int], array[float]]:
    ts, t = [], 1_700_000_000_000
    for gap, _ in window:
        t += gap
        ts.append(t)
    return array("q", ts), array("d", [v for _, v in window])


@settings(max_examples=300, deadline=None)
@given(_windows, st.integers(-3_000, 3_000), st.booleans())
def test_linear_regression_matches_the_go_transcription(
    window: list[tuple[int, float]], shift: int, at_end: bool
) -> None:
    """Slope and intercept equal the plain loop's, for deriv's and predict_linear's t0."""
    ts, vs = _series(window)
    t0 = (ts[-1] if at_end else ts[0]) + shift
    got = linear_regression(ts, vs, 0, len(ts), t0, cache={})
    want = _ref_regression(list(ts), list(vs), t0)
    assert _same(got[0], want[0])
    assert _same(got[1], want[1])


@settings(max_examples=300, deadline=None)
@given(_windows)
def test_avg_and_sum_over_time_match_the_go_transcription(window: list[tuple[int, float]]) -> None:
    """avg_over_time's running mean and sum_over_time's compensated sum, bit for bit."""
    ts, vs = _series(window)
    env = Env(0, 0, 0, 1.0, [])
    got = RANGE_KERNELS["avg_over_time"](ts, vs, 0, len(vs), env)
    assert got is not None
    assert _same(got, _ref_avg(list(vs)))
    total = c = 0.0
    for v in vs:
        total, c = _kahan_inc(v, total, c)
    got_sum = RANGE_KERNELS["sum_over_time"](ts, vs, 0, len(vs), env)
    assert got_sum is not None
    assert _same(got_sum, total if math.isinf(total) else total + c)


_counter = st.lists(
    st.one_of(st.integers(0, 50).map(float), st.just(STALE_NAN), st.just(math.nan)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(_counter, st.integers(1, 8))
def test_incremental_index_matches_a_fresh_evaluation(values: list[float], every: int) -> None:
    """Evaluating while samples arrive (the index grows step by step) gives the same
    results as evaluating once over the complete history."""
    exprs = ["rate(c[20s])", "increase(c[35s])", "resets(c[1m])", "count_over_time(c[15s])", "c"]
    live = Store(retention_ms=10**9, max_series=10)
    live_queries = [compile_expr(e) for e in exprs]
    labels = (("__name__", "c"),)
    seen: list[list[object]] = []
    for k, v in enumerate(values):
        live.ingest(k * 5_000, {labels: v}, origin="o")
        if k % every == 0 or k == len(values) - 1:
            seen.append([q.evaluate(live, k * 5_000) for q in live_queries])
    fresh = Store(retention_ms=10**9, max_series=10)
    for k, v in enumerate(values):
        fresh.ingest(k * 5_000, {labels: v}, origin="o")
    fresh_queries = [compile_expr(e) for e in exprs]
    times = [k * 5_000 for k in range(len(values)) if k % every == 0 or k == len(values) - 1]
    for t, got in zip(times, seen, strict=True):
        want = [q.evaluate(fresh, t) for q in fresh_queries]
        assert repr(got) == repr(want)
