"""Least squares as Prometheus 2.42's ``linearRegression`` (``deriv``, ``predict_linear``).

Where the install built the C kernels (``native``) and the window is the store's arrays,
the whole fit runs in C, each of Go's operations as written. What follows is the Python
that runs otherwise, and the reference the C is tested against.

Four Kahan-Neumaier sums (x, y, xy, x², with x in seconds from an intercept time), then
slope and intercept from them. The result must be bit-identical; how fast the sums go is
what the rule loop pays for:

* the x sums depend only on the timestamps, and the series of one scrape share their
  timestamps: they are computed once per distinct window and reused, by the series of
  one evaluation (``cache``) and by the rules evaluated at the same time (``_RECENT``);
* on Python 3.12+ ``sum()`` of floats *is* this compensated sum, at C speed;
* on 3.11, ``math.fsum`` wherever it provably returns Go's bits (``kahan``: x has one
  sign in a window, and so have most gauges), each sum one C pass;
* otherwise Python loops. Where the signs are known, ``kahanSumInc``'s ``abs()``
  comparisons become plain ones, which take the same branches in less time; the rest
  goes through ``kahan_sum``.

Measured with ``python bench/bench_promql.py --prometheus``, 20 rules over 160 series of
1 s samples (20 min kept), Python 3.11, on a shared 2-core machine, two runs each, ms
per cycle as median / best of 20, Prometheus 2.42 in the same run beside it:

* Python loops only: 10.28 / 8.85 against 9.81 / 5.72 (1.05x / 1.55x by the best);
* ``math.fsum`` paths: 7.13 / 6.22 against 9.82 / 6.52 (0.73x / 0.95x), and
  6.08 / 5.71 against 10.45 / 6.29 (0.58x / 0.91x).

A regression over 900 samples went from about 100-200 us to 60 us (the y and x*y sums:
one ``min()``, two ``fsum()``). What did not pay: the compensation done with C-level
iterators, i.e. the running sums by ``itertools.accumulate``, the two candidate terms by
``map(operator.sub/add)``, the branch by ``map(operator.ge, map(abs, ...))`` and the
compensation by ``sum()``: the same IEEE operations in the same order, but 110-160 ns a
sample against 55-70 for the loop (each mapped operation allocates a float). The loops
are written out rather than calls to ``kahan_sum`` for the same reason: 12.3 ms per
cycle as written, 15.2 with the y and x*y sums as two ``kahan_sum`` passes. Every path
takes ``kahanSumInc``'s branches or provably has its result, so the bits are the same
(tests/test_promql_paths.py checks them against a plain transcription).
"""

from __future__ import annotations

import math
from array import array
from itertools import repeat
from math import fsum
from operator import mul, sub, truediv
from typing import Any

from sidecar.rules.promql import native
from sidecar.rules.promql.kahan import (
    NEUMAIER_SUM,
    fsum_is_kahan,
    kahan_dot,
    kahan_sum,
    one_signed_fsum,
)
from sidecar.rules.promql.values import go_div

__all__ = ["XSums", "linear_regression"]

XSums = tuple[list[float], float, float, int, tuple[float, float] | None]
"""x values, their compensated sum, the compensated sum of their squares, their sign
(1: all >= 0, -1: all <= 0, 0: mixed), and for ``kahan_dot`` their sum and smallest
nonzero magnitude (``None`` when x has both signs)."""


_RECENT: dict[tuple[int, bytes], XSums] = {}
_RECENT_MAX = 8
"""The x sums of the last few windows, whatever rule asked: the metrics of one scrape
share their timestamps, so ``deriv(a[10m])`` and ``deriv(b[10m])`` evaluated at the same
time have the same x (as have the ``predict_linear`` of one range). Keyed by the exact
timestamps, so a stale entry can only miss; bounded, as each holds a window of floats."""


def _x_sums(tw: Any, t0: int) -> XSums:
    # float64(t - t0) / 1e3 in Go; operator functions map at C speed, bound methods don't.
    xs = list(map(truediv, map(sub, tw, repeat(t0)), repeat(1e3)))
    sign = 1 if tw[0] >= t0 else -1 if tw[-1] <= t0 else 0
    if NEUMAIER_SUM:
        return xs, sum(xs), sum(map(mul, xs, xs)), sign, None
    dot = None
    if sign and len(xs) > 1:
        # Timestamps ascend, so x does: its smallest nonzero magnitude is at an end (or
        # next to it, after an x of 0), and x has one sign throughout.
        small = (xs[0] or xs[1]) if sign > 0 else -(xs[-1] or xs[-2])
        sx = fsum(xs)
        dot = sx, small
        sx2 = kahan_dot(xs, xs, dot, dot)
        if sx2 is not None and fsum_is_kahan(len(xs), small, 4.0 * abs(sx)):
            return xs, sx, sx2, sign, dot
    sx = cx = sx2 = cx2 = 0.0
    for x in xs:
        s = sx + x
        if (sx >= x) if sign > 0 else (sx <= x) if sign < 0 else (abs(sx) >= abs(x)):
            cx += (sx - s) + x
        else:
            cx += (x - s) + sx
        sx = s
        p = x * x
        s = sx2 + p
        if sx2 >= p:
            cx2 += (sx2 - s) + p
        else:
            cx2 += (p - s) + sx2
        sx2 = s
    return xs, sx + cx, sx2 + cx2, sign, dot


def linear_regression(
    ts: Any, vs: Any, i: int, j: int, t0: int, *, cache: dict[Any, XSums]
) -> tuple[float, float]:
    """Slope and intercept (at ``t0``) of the samples ``ts[i:j]``, ``vs[i:j]``.

    ``cache`` keeps x sums by window for the duration of one evaluation.
    """
    c_kernels = native.kernels
    if c_kernels is not None and type(vs) is array and type(ts) is array:
        return c_kernels.linear_regression(ts, vs, i, j, t0)
    init_y = vs[i]
    w = vs[i:j]
    # A last value unlike the first settles it without counting (NaN is unlike itself).
    if init_y == vs[j - 1] and w.count(init_y) == len(w):
        # Every y equals the first (NaN never does): Prometheus's constY shortcut.
        if math.isinf(init_y):
            return math.nan, math.nan
        return 0.0, init_y
    tw = ts[i:j]
    key = (t0, tw.tobytes()) if hasattr(tw, "tobytes") else None
    xsums = (cache.get(key) or _RECENT.get(key)) if key is not None else None
    if xsums is None:
        xsums = _x_sums(tw, t0)
        if key is not None:
            cache[key] = xsums
            if len(_RECENT) >= _RECENT_MAX:
                del _RECENT[next(iter(_RECENT))]  # the oldest
            _RECENT[key] = xsums
    xs, sx, sx2, sign, x_dot = xsums
    n = float(j - i)
    if NEUMAIER_SUM:
        sy = sum(w)
        sxy = sum(map(mul, xs, w))
        if sy - sy == 0.0 and sxy - sxy == 0.0:
            return _fit(n, sx, sy, sxy, sx2)
        # Infinities: sum() skips a non-finite compensation, Go adds it; do it Go's way.
        sy, sxy = _y_sums(xs, w, 0, False)
        return _fit(n, sx, sy, sxy, sx2)
    y = one_signed_fsum(w) if x_dot is not None else None
    if x_dot is not None and y is not None:
        # Both sums at C speed where that is provably Go's result (see ``kahan``).
        sxy = kahan_dot(xs, w, x_dot, y)
        if sxy is not None:
            return _fit(n, sx, y[0], sxy, sx2)
    sy, sxy = _y_sums(xs, w, sign, min(w) >= 0)
    return _fit(n, sx, sy, sxy, sx2)


def _fit(n: float, sx: float, sy: float, sxy: float, sx2: float) -> tuple[float, float]:
    cov = sxy - sx * sy / n
    var = sx2 - sx * sx / n
    slope = go_div(cov, var)
    return slope, sy / n - slope * sx / n


def _y_sums(xs: list[float], w: Any, sign: int, y_pos: bool) -> tuple[float, float]:
    """Compensated sums of y and x*y, exactly ``kahanSumInc`` twice per sample."""
    if not y_pos or sign == 0:
        sy, cy = kahan_sum(w)
        sxy, cxy = kahan_sum(map(mul, xs, w))
        return sy + cy, sxy + cxy
    # The common case (a gauge never below zero), in one pass without abs(): the two
    # loops differ only in the x*y comparison. Timings in the module docstring.
    sy = cy = sxy = cxy = 0.0
    if sign > 0:
        # Every term and running sum is >= 0: |s| >= |term| is s >= term.
        for x, v in zip(xs, w, strict=True):
            s = sy + v
            if sy >= v:
                cy += (sy - s) + v
            else:
                cy += (v - s) + sy
            sy = s
            p = x * v
            s = sxy + p
            if sxy >= p:
                cxy += (sxy - s) + p
            else:
                cxy += (p - s) + sxy
            sxy = s
    else:
        # y >= 0 but x*y <= 0: for the xy sum, |s| >= |term| is s <= term.
        for x, v in zip(xs, w, strict=True):
            s = sy + v
            if sy >= v:
                cy += (sy - s) + v
            else:
                cy += (v - s) + sy
            sy = s
            p = x * v
            s = sxy + p
            if sxy <= p:
                cxy += (sxy - s) + p
            else:
                cxy += (p - s) + sxy
            sxy = s
    return sy + cy, sxy + cxy
