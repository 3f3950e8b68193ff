"""Functions over a range window (``rate``, ``deriv``, ``avg_over_time``, ...).

Each kernel gets one series' window as ``ts[i:j]`` / ``vs[i:j]`` (integer milliseconds and
floats, staleness markers already dropped) and returns the value, or ``None`` for "no
output for this series". The float arithmetic is Prometheus 2.42's, operation by
operation: Kahan-Neumaier compensated sums (``kahanSumInc``), the incremental mean of
``avg_over_time``, the least-squares fit with its intercept time, and the extrapolation
of ``extrapolatedRate``. Python floats are IEEE doubles with the same rounding as Go on
amd64, so the same sequence of operations yields the same bits.

The work that grows with the window in Python loops (``avg_over_time``, ``sum_over_time``,
``stdvar``/``stddev_over_time``, ``deriv``, ``predict_linear``, and the counter resets
``rate`` and ``increase`` add back) runs in C over the store's arrays where the install
built the C kernels (``native``): the same operations in the same order, a few
nanoseconds a sample instead of 50-100. The Python below is the reference; it runs every
window that is not an array, and every window of an install without the C build.
Where a shortcut is provably identical (``sum()`` on Python 3.12+, see ``regression``;
``math.fsum`` for values of one sign, see ``kahan``; ``min``/``max`` of finite values), the
Python kernel takes it.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable
from math import isnan
from operator import lt, ne
from typing import Any

from sidecar.rules.promql import native
from sidecar.rules.promql.kahan import NEUMAIER_SUM, kahan_sum, one_signed_fsum
from sidecar.rules.promql.regression import linear_regression
from sidecar.rules.promql.values import PromQLError, go_sqrt

__all__ = ["RANGE_KERNELS", "Env", "Kernel", "quantile", "range_seconds"]


class Env:
    """What a kernel needs besides the window: eval time, range bounds, scalar arguments."""

    __slots__ = ("cache", "end", "params", "range_s", "resets", "start", "t")

    def __init__(self, t: int, start: int, end: int, range_s: float, params: list[float]) -> None:
        self.t = t
        self.start = start
        self.end = end
        self.range_s = range_s
        self.params = params
        self.cache: dict[Any, Any] = {}
        """Per-evaluation memo shared by the series, e.g. regression x sums by window."""
        self.resets: bool | None = None
        """Whether the current window has a value below its predecessor (None: unknown)."""


Kernel = Callable[[Any, Any, int, int, Env], "float | None"]


def range_seconds(range_ms: int) -> float:
    """Go's ``time.Duration.Seconds()``: whole seconds plus the remainder in nanoseconds / 1e9."""
    sec, rem = divmod(range_ms, 1000)
    return float(sec) + float(rem * 1_000_000) / 1e9


def _finite(w: Any) -> bool:
    total = sum(w)
    return bool(total - total == 0.0)


def _extrapolated_rate(
    ts: Any, vs: Any, i: int, j: int, env: Env, *, counter: bool, rate: bool
) -> float | None:
    n = j - i
    if n < 2:
        return None
    first_v = vs[i]
    first_t = ts[i]
    last_t = ts[j - 1]
    result = vs[j - 1] - first_v
    has_reset = env.resets
    if counter and has_reset is None:
        has_reset = any(map(lt, vs[i + 1 : j], vs[i : j - 1]))
    if counter and has_reset:
        c_kernels = native.kernels
        if c_kernels is not None and type(vs) is array:
            result = c_kernels.add_counter_resets(vs, i, j, result)
        else:
            result = _add_counter_resets(vs, i, j, result)
    to_start = (first_t - env.start) / 1000
    to_end = (env.end - last_t) / 1000
    sampled = (last_t - first_t) / 1000
    avg_step = sampled / (n - 1)
    if counter and result > 0 and first_v >= 0:
        # A counter cannot go below zero: do not extrapolate past its zero point.
        to_zero = sampled * (first_v / result)
        to_start = min(to_start, to_zero)
    threshold = avg_step * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else avg_step / 2
    interval += to_end if to_end < threshold else avg_step / 2
    factor = interval / sampled
    if rate:
        factor /= env.range_s
    return float(result * factor)


def _add_counter_resets(vs: Any, i: int, j: int, result: float) -> float:
    """``result`` plus the value before each drop in ``vs[i:j]``, in order."""
    prev = vs[i]
    for k in range(i + 1, j):
        cur = vs[k]
        if cur < prev:
            result += prev
        prev = cur
    return result


def _rate(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    return _extrapolated_rate(ts, vs, i, j, env, counter=True, rate=True)


def _increase(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    return _extrapolated_rate(ts, vs, i, j, env, counter=True, rate=False)


def _delta(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    return _extrapolated_rate(ts, vs, i, j, env, counter=False, rate=False)


def _instant_value(ts: Any, vs: Any, i: int, j: int, rate: bool) -> float | None:
    if j - i < 2:
        return None
    last = vs[j - 1]
    prev = vs[j - 2]
    result = last if rate and last < prev else last - prev
    interval = ts[j - 1] - ts[j - 2]
    if interval == 0:
        return None
    if rate:
        result /= interval / 1000
    return float(result)


def _irate(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    return _instant_value(ts, vs, i, j, True)


def _idelta(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    return _instant_value(ts, vs, i, j, False)


def _deriv(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    if j - i < 2:
        return None
    return linear_regression(ts, vs, i, j, ts[i], cache=env.cache)[0]


def _predict_linear(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    if j - i < 2:
        return None
    slope, intercept = linear_regression(ts, vs, i, j, env.t, cache=env.cache)
    return slope * env.params[0] + intercept


def _avg_over_time(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    c_kernels = native.kernels
    if c_kernels is not None and type(vs) is array:
        return c_kernels.avg_over_time(vs, i, j)
    w = vs[i:j]
    mean = c = count = 0.0
    if NEUMAIER_SUM and _finite(w):
        # The running mean is a plain sum of the increments; Kahan's compensation only
        # changes the final "mean + c", which is what sum() returns.
        incs = []
        for v in w:
            count += 1.0
            inc = v / count - mean / count
            incs.append(inc)
            mean += inc
        return float(sum(incs))
    # Written out rather than kahan_sum() over a generator of increments (each depends on
    # the running mean): that costs avg_over_time 15% more.
    for v in w:
        count += 1.0
        # "mean - mean != 0.0" is the cheap half of the infinity test: only an infinite
        # (or NaN) mean passes it, and a finite mean pays no call to isinf().
        if mean - mean != 0.0 and math.isinf(mean):
            if math.isinf(v) and (mean > 0) == (v > 0):
                continue
            if not math.isinf(v) and not isnan(v):
                continue
        inc = v / count - mean / count
        s = mean + inc
        # abs(mean) >= abs(inc) without two calls to abs(): the same for every float.
        if (inc <= mean and -inc <= mean) or (inc >= mean and -inc >= mean):
            c += (mean - s) + inc
        else:
            c += (inc - s) + mean
        mean = s
    if math.isinf(mean):
        return mean
    return mean + c


def _sum_over_time(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    c_kernels = native.kernels
    if c_kernels is not None and type(vs) is array:
        return c_kernels.sum_over_time(vs, i, j)
    w = vs[i:j]
    if NEUMAIER_SUM:
        return float(sum(w))
    exact = one_signed_fsum(w)
    if exact is not None:
        return exact[0]
    total, c = kahan_sum(w)
    if math.isinf(total):
        return total
    return total + c


def _count_over_time(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    return float(j - i)


def _last_over_time(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    return float(vs[j - 1])


def _present_over_time(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    return 1.0


def _max_over_time(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    w = vs[i:j]
    if _finite(w):
        return float(max(w))
    best = w[0]
    for v in w:
        if v > best or isnan(best):
            best = v
    return float(best)


def _min_over_time(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    w = vs[i:j]
    if _finite(w):
        return float(min(w))
    best = w[0]
    for v in w:
        if v < best or isnan(best):
            best = v
    return float(best)


def _stdvar(vs: Any, i: int, j: int) -> float:
    c_kernels = native.kernels
    if c_kernels is not None and type(vs) is array:
        return c_kernels.stdvar_over_time(vs, i, j)
    # Two kahanSumInc written out: each step of one sum reads the other (mean + c_mean).
    count = mean = c_mean = aux = c_aux = 0.0
    for v in vs[i:j]:
        count += 1.0
        delta = v - (mean + c_mean)
        inc = delta / count
        s = mean + inc
        if abs(mean) >= abs(inc):
            c_mean += (mean - s) + inc
        else:
            c_mean += (inc - s) + mean
        mean = s
        inc = delta * (v - (mean + c_mean))
        s = aux + inc
        if abs(aux) >= abs(inc):
            c_aux += (aux - s) + inc
        else:
            c_aux += (inc - s) + aux
        aux = s
    return (aux + c_aux) / count


def _stdvar_over_time(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    return _stdvar(vs, i, j)


def _stddev_over_time(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    return go_sqrt(_stdvar(vs, i, j))


def quantile(q: float, values: list[float]) -> float:
    """Prometheus's ``quantile``: interpolate linearly between the closest ranks; NaN first."""
    if not values or isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    values.sort(key=lambda v: (not isnan(v), v if not isnan(v) else 0.0))
    n = float(len(values))
    rank = q * (n - 1)
    lower = max(0.0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return values[int(lower)] * (1 - weight) + values[int(upper)] * weight


def _quantile_over_time(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    return quantile(env.params[0], list(vs[i:j]))


def _changes(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    w = vs[i:j]
    if _finite(w):
        return float(sum(map(ne, vs[i + 1 : j], vs[i : j - 1])))
    changes = 0
    prev = w[0]
    for cur in w[1:]:
        if cur != prev and not (isnan(cur) and isnan(prev)):
            changes += 1
        prev = cur
    return float(changes)


def _resets(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    if env.resets is False:
        return 0.0
    return float(sum(map(lt, vs[i + 1 : j], vs[i : j - 1])))


def _holt_winters(ts: Any, vs: Any, i: int, j: int, env: Env) -> float | None:
    sf, tf = env.params
    if sf <= 0 or sf >= 1:
        raise PromQLError(f"invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:f}")
    if tf <= 0 or tf >= 1:
        raise PromQLError(f"invalid trend factor. Expected: 0 < tf < 1, got: {tf:f}")
    if j - i < 2:
        return None
    s0 = 0.0
    s1 = vs[i]
    b = vs[i + 1] - vs[i]
    for k in range(1, j - i):
        x = sf * vs[i + k]
        if k - 1 != 0:
            b = tf * (s1 - s0) + (1 - tf) * b
        y = (1 - sf) * (s1 + b)
        s0, s1 = s1, x + y
    return float(s1)


RANGE_KERNELS: dict[str, Kernel] = {
    "rate": _rate,
    "increase": _increase,
    "delta": _delta,
    "irate": _irate,
    "idelta": _idelta,
    "deriv": _deriv,
    "predict_linear": _predict_linear,
    "avg_over_time": _avg_over_time,
    "sum_over_time": _sum_over_time,
    "count_over_time": _count_over_time,
    "last_over_time": _last_over_time,
    "present_over_time": _present_over_time,
    "max_over_time": _max_over_time,
    "min_over_time": _min_over_time,
    "stddev_over_time": _stddev_over_time,
    "stdvar_over_time": _stdvar_over_time,
    "quantile_over_time": _quantile_over_time,
    "changes": _changes,
    "resets": _resets,
    "holt_winters": _holt_winters,
}
"""Range-vector functions by name. ``absent_over_time`` is not here: it looks at all
series at once (see the evaluator)."""
