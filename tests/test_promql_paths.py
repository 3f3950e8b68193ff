"""The evaluator's fast paths give the same bits as a plain transcription of Prometheus's
Go code: compensated sums, the running mean, least squares, and the per-series index of
staleness markers and counter resets kept between evaluations. The kernels' tests run on
the C kernels and on the Python ones (``range_kernels``)."""

from __future__ import annotations

import math
import random
from array import array
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.core.model import STALE_NAN
from sidecar.rules.promql import compile_expr, native
from sidecar.rules.promql.kahan import fsum_is_kahan, kahan_dot, one_signed_fsum
from sidecar.rules.promql.rangefuncs import RANGE_KERNELS, Env
from sidecar.rules.promql.regression import linear_regression
from sidecar.store import Store

_floats = st.one_of(
    st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
    st.integers(min_value=-(10**6), max_value=10**6).map(float),
    st.sampled_from([0.0, -0.0, 0.1, 1e-300, math.inf, -math.inf, math.nan]),
)
_windows = st.lists(st.tuples(st.integers(1, 5_000), _floats), min_size=2, max_size=60)


@st.composite
def _one_signed(draw: st.DrawFn) -> list[float]:
    """Values of one sign (zeros allowed) whose magnitudes span up to 2**50: what takes
    the math.fsum paths when the spread is small enough, and the loops when it is not.
    Full 53-bit mantissas, so nearly every addition rounds."""
    sign = draw(st.sampled_from([1.0, -1.0]))
    top = draw(st.integers(-40, 60))
    spread = draw(st.integers(0, 50))
    n = draw(st.integers(2, 1_200))
    seed = draw(st.integers(0, 2**32))
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < 0.02:
            out.append(0.0)
        else:
            out.append(sign * math.ldexp(1.0 + rng.random(), top - rng.randint(0, spread)))
    return out


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


# One fixture value for all of a test's examples: it only picks the kernels. (@given's
# positional strategies fill the rightmost parameters, so the fixture comes first.)
_FIXED = [HealthCheck.function_scoped_fixture]


@settings(max_examples=300, deadline=None, suppress_health_check=_FIXED)
@given(_windows, st.integers(-3_000, 3_000), st.booleans())
def test_linear_regression_matches_the_go_transcription(
    range_kernels: str, window: list[tuple[int, float]], shift: int, at_end: bool
) -> None:
    """Slope and intercept equal the plain loop's, for deriv's and predict_linear's t0."""
    ts, vs = _series(window)
    t0 = (ts[-1] if at_end else ts[0]) + shift
    got = linear_regression(ts, vs, 0, len(ts), t0, cache={})
    want = _ref_regression(list(ts), list(vs), t0)
    assert _same(got[0], want[0])
    assert _same(got[1], want[1])


@settings(max_examples=300, deadline=None, suppress_health_check=_FIXED)
@given(_windows)
def test_avg_and_sum_over_time_match_the_go_transcription(
    range_kernels: str, window: list[tuple[int, float]]
) -> None:
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


def _kahan_ref(values: list[float]) -> float:
    total = c = 0.0
    for v in values:
        total, c = _kahan_inc(v, total, c)
    return total if math.isinf(total) else total + c


def _plain(values: list[float]) -> float:
    total = 0.0
    for v in values:
        total += v
    return total


@st.composite
def _pile_up(draw: st.DrawFn) -> list[float]:
    """One large term, then many small ones of full precision and the same sign: every
    rounding error has the same sign and the finest quantum, the worst case for the
    compensation's own sum (its exactness is what ``fsum_is_kahan`` vouches for)."""
    big = math.ldexp(1.0 + draw(st.floats(0.0, 1.0, exclude_max=True)), draw(st.integers(-5, 5)))
    gap = draw(st.integers(30, 66))
    n = draw(st.integers(1, 2_000))
    rng = random.Random(draw(st.integers(0, 2**32)))
    sign = draw(st.sampled_from([1.0, -1.0]))
    tail = [sign * math.ldexp(1.0 + rng.random(), -gap) * big for _ in range(n)]
    return [sign * big, *tail]


_adversarial = st.lists(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.floats(min_value=-1e3, max_value=1e3),
        st.sampled_from([0.0, -0.0, 5e-324, 2.0**-1000, 1e300, -1e300, 2.0**53, 1.0, -1.0]),
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=500, deadline=None)
@given(st.one_of(_adversarial, _one_signed(), _pile_up()))
def test_fsum_is_kahan_whenever_the_test_says_so(values: list[float]) -> None:
    """For any finite terms (huge, tiny, subnormal, both signs, cancelling), when
    ``fsum_is_kahan`` holds for their smallest nonzero magnitude and their largest running
    sum, Go's compensation is exact (its proof's claim, checked in rationals) and Go's
    ``sum + c`` is math.fsum's result, bit for bit."""
    running, total, c = [], 0.0, 0.0
    for v in values:
        total, c = _kahan_inc(v, total, c)
        running.append(abs(total))
    if math.isinf(total) or math.isnan(total):
        return
    small = min((abs(v) for v in values if v), default=0.0)
    if fsum_is_kahan(len(values), small, max(running)):
        assert Fraction(c) == sum(map(Fraction, values)) - Fraction(total)
        got = math.fsum(values)
        assert got == total + c
        assert math.copysign(1.0, got) == math.copysign(1.0, total + c)


def test_fsum_paths_are_taken_where_the_compensation_matters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A window of 900 noisy gauge values, whose plain sum is off in the last bits, takes
    the Python kernels' math.fsum paths of sum_over_time and of both regression sums, with
    Go's results."""
    monkeypatch.setattr(native, "kernels", None)
    ts = array("q", [1_700_000_000_000 + k * 1_000 + (k * 7) % 13 for k in range(900)])
    vs = array("d", [1.1 + math.sin(k) ** 2 * 1e3 / 7 for k in range(900)])
    assert _plain(list(vs)) != _kahan_ref(list(vs))  # the compensation changes the result
    y = one_signed_fsum(vs)
    assert y == (_kahan_ref(list(vs)), min(vs))
    env = Env(0, 0, 0, 1.0, [])
    assert RANGE_KERNELS["sum_over_time"](ts, vs, 0, 900, env) == _kahan_ref(list(vs))
    for t0 in (ts[0], ts[-1] + 250):
        xs = [(t - t0) / 1e3 for t in ts]
        x = one_signed_fsum(xs)
        assert x is not None
        products = [a * b for a, b in zip(xs, vs, strict=True)]
        assert _plain(products) != _kahan_ref(products)
        assert kahan_dot(xs, vs, x, y) == _kahan_ref(products)
        got = linear_regression(ts, vs, 0, 900, t0, cache={})
        assert got == _ref_regression(list(ts), list(vs), t0)


def test_fsum_is_kahan_refuses_what_it_cannot_vouch_for() -> None:
    """Spreads too wide for the count of terms, subnormal terms and sums near overflow
    are left to the step-by-step loops."""
    assert fsum_is_kahan(900, 1.0, 1e6)
    assert not fsum_is_kahan(900, 1.0, 2.0**45)
    assert fsum_is_kahan(1, 1.0, 2.0**52)
    assert not fsum_is_kahan(2, 1.0, 2.0**53)
    assert not fsum_is_kahan(2, 5e-324, 1e-300)
    assert not fsum_is_kahan(2, 1.0, 1e305)
    assert one_signed_fsum([1.0, -1.0]) is None
    assert one_signed_fsum([1.0, math.nan]) is None
    assert one_signed_fsum([math.inf, 1.0]) is None
    assert one_signed_fsum([math.inf, -math.inf]) is None
    assert one_signed_fsum([1e308, 1e308, 1e308]) is None
    assert one_signed_fsum([0.0, -0.0]) is None
    assert one_signed_fsum([1.0, 2.0**-60]) is None
    assert one_signed_fsum([0.0, 3.0, 2.0]) == (5.0, 2.0)
    assert one_signed_fsum([-0.0, -3.0, -2.0]) == (-5.0, 2.0)


@settings(max_examples=300, deadline=None, suppress_health_check=_FIXED)
@given(_one_signed(), st.integers(-3_000, 3_000), st.booleans(), st.integers(0, 400))
def test_one_signed_windows_match_the_go_transcription(
    range_kernels: str, values: list[float], shift: int, at_end: bool, jitter: int
) -> None:
    """Long windows of one sign, the shape the math.fsum paths take: regression for both
    intercept times, avg_over_time and sum_over_time equal the plain loops' bits."""
    rng = random.Random(len(values) * 31 + jitter)
    t, stamps = 1_700_000_000_000, []
    for _ in values:
        t += 1_000 + rng.randint(-jitter, jitter)
        stamps.append(t)
    ts, vs = array("q", stamps), array("d", values)
    t0 = (ts[-1] if at_end else ts[0]) + shift
    got = linear_regression(ts, vs, 0, len(ts), t0, cache={})
    want = _ref_regression(list(ts), list(vs), t0)
    assert _same(got[0], want[0])
    assert _same(got[1], want[1])
    env = Env(0, 0, 0, 1.0, [])
    assert RANGE_KERNELS["sum_over_time"](ts, vs, 0, len(vs), env) == _kahan_ref(values)
    avg = RANGE_KERNELS["avg_over_time"](ts, vs, 0, len(vs), env)
    assert avg is not None
    assert _same(avg, _ref_avg(values))


def test_x_sums_are_shared_only_by_identical_timestamps(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the Python kernels, rules over other metrics of the same scrape reuse the x sums
    of a window; a window differing in one inner timestamp (same ends, same length, same
    t0) does not."""
    monkeypatch.setattr(native, "kernels", None)
    stamps = [1_700_000_000_000 + k * 1_000 for k in range(300)]
    moved = list(stamps)
    moved[150] += 400
    t0 = stamps[-1] + 100
    for ts_list, values in (
        (stamps, [5e3 + 7.0 * math.sin(k) for k in range(300)]),
        (stamps, [2e6 + 3.0 * k + math.cos(k) for k in range(300)]),
        (moved, [2e6 + 3.0 * k + math.cos(k) for k in range(300)]),
    ):
        ts, vs = array("q", ts_list), array("d", values)
        got = linear_regression(ts, vs, 0, len(ts), t0, cache={})
        assert got == _ref_regression(ts_list, values, t0)
