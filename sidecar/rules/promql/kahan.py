"""Prometheus's compensated sum (``kahanSumInc``), and when ``math.fsum`` has its bits.

Prometheus 2.42 adds each term with Neumaier's variant of Kahan summation, starting from
``sum = c = 0``::

    t := sum + inc
    if math.Abs(sum) >= math.Abs(inc) { c += (sum - t) + inc } else { c += (inc - t) + sum }
    sum = t

and returns ``sum + c``. On Python 3.11 that is a Python loop per term (``kahan_sum``);
``math.fsum`` runs at C speed but returns the correctly rounded sum, which ``sum + c``
is not in general. It is whenever the compensation ``c`` is itself exact, and that can be
checked from two numbers known in advance (``fsum_is_kahan``):

1. With no overflow, each compensation term is exactly the rounding error ``e`` of its
   ``t = sum + inc``: the branch on ``abs()`` is what makes it exact (Fast2Sum: Dekker,
   1971; Knuth, TAOCP vol. 2, 4.2.2).
2. Let every nonzero term have a magnitude of at least ``small``, with
   ``2**(k-1) <= small < 2**k``: each term is a multiple of ``q = 2**(k-53)`` (its own
   ulp is), and so is each running sum (a sum of multiples of ``q`` is one; when it is
   rounded, it is rounded to a multiple of its ulp, which is then larger than ``q``), and
   so is each ``e``.
3. Let every running sum have a magnitude of at most ``bound < 2**K``: its ulp is at most
   ``2**(K-53)``, so ``|e| <= 2**(K-54)``, and every partial sum of the ``n`` terms ``e``
   is at most ``n * 2**(K-54)`` in magnitude. When that is below ``2**53 * q = 2**k``, each
   partial sum is a multiple of ``q`` with at most 53 bits: representable, so ``c`` is
   added up without rounding and equals the exact ``(sum of the terms) - sum``.
4. Then ``sum + c`` is one rounding of the exact sum of the terms (ties to even, as
   Go's ``+``): what ``math.fsum`` returns. (A sum of exactly zero, whose sign could
   differ, never comes here: the callers sum terms of one sign, not all zero.)

So ``fsum_is_kahan(n, small, bound)`` is ``n < 2**(k - K + 54)``, with ``small`` kept in
the normal range and ``bound`` far from overflow. For terms of one sign the running sums
only grow in magnitude, up to their total give or take ``n`` roundings, so ``bound`` is
known once the sum is. Windows that miss the test (mixed signs, magnitudes more than
~2**30 apart, NaN, infinities) take the step-by-step loops, which are Go's code as is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from math import frexp, fsum
from operator import mul
from typing import Any

__all__ = ["NEUMAIER_SUM", "fsum_is_kahan", "kahan_dot", "kahan_sum", "one_signed_fsum"]

NEUMAIER_SUM = sum([1.0, 1e100, 1.0, -1e100]) == 2.0
"""True when ``sum()`` of floats is Neumaier's compensated sum (CPython 3.12+): the same
operations as Prometheus's ``kahanSum``. Probed, not inferred from the version."""

_SMALLEST = 2.0**-1000
"""Below this a term could be subnormal, whose ulp is not given by its exponent."""
_LARGEST = 2.0**1000
"""Above this a running sum could overflow."""


def kahan_sum(values: Iterable[float]) -> tuple[float, float]:
    """``kahanSumInc`` over ``values``: the running sum and its compensation, apart (Go
    returns their total, or the sum alone where it guards against an infinity)."""
    s = c = 0.0
    for v in values:
        t = s + v
        if abs(s) >= abs(v):
            c += (s - t) + v
        else:
            c += (v - t) + s
        s = t
    return s, c


def fsum_is_kahan(n: int, small: float, bound: float) -> bool:
    """Whether ``kahanSumInc``'s ``sum + c`` over ``n`` finite terms is ``math.fsum`` of
    them, given that every nonzero term has a magnitude of at least ``small`` and every
    running sum (plain, left to right from 0.0) one of at most ``bound`` (module
    docstring, steps 1-4)."""
    if not (small >= _SMALLEST and bound <= _LARGEST):
        return False
    return n.bit_length() <= frexp(small)[1] - frexp(bound)[1] + 54


def one_signed_fsum(w: Sequence[float] | Any) -> tuple[float, float] | None:
    """``kahanSumInc``'s ``sum + c`` over ``w`` by ``math.fsum``, with the smallest
    nonzero magnitude of ``w`` (what ``kahan_dot`` needs), for finite values of one sign
    (zeros allowed) that pass ``fsum_is_kahan``; ``None`` otherwise.

    The running sums of terms of one sign only grow in magnitude, to the plain sum, which
    is within ``n`` roundings of the correctly rounded one: ``4 * |fsum|`` bounds them.
    """
    try:
        total = fsum(w)
    except (OverflowError, ValueError):
        return None  # an intermediate overflow, or infinities of both signs
    if total - total != 0.0 or total == 0.0:
        return None  # NaN or an infinity among the values; or nothing but zeros
    lo = min(w)
    if lo > 0.0:
        small = lo
    elif lo == 0.0:
        small = min(filter(None, w))
    else:
        hi = max(w)
        if hi < 0.0:
            small = -hi
        elif hi == 0.0:
            small = -max(filter(None, w))
        else:
            return None  # both signs
    if not fsum_is_kahan(len(w), small, 4.0 * abs(total)):
        return None
    return total, small


def kahan_dot(
    xs: Sequence[float], ys: Sequence[float] | Any, x: tuple[float, float], y: tuple[float, float]
) -> float | None:
    """``kahanSumInc``'s ``sum + c`` over the products ``x * y``, by ``math.fsum``, or
    ``None`` when that is not provably the same. ``x`` and ``y`` are the sum and the
    smallest nonzero magnitude of two sequences of one sign each (``one_signed_fsum``),
    so the products have one sign too: their running sums grow in magnitude up to about
    their total, and no nonzero product is below half the product of the smallest."""
    total_x, small_x = x
    total_y, small_y = y
    if not abs(total_x * total_y) <= _LARGEST:
        return None  # the products' sum could overflow
    r = fsum(map(mul, xs, ys))
    return r if fsum_is_kahan(len(xs), small_x * small_y * 0.5, 4.0 * abs(r)) else None
