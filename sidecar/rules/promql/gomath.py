"""Go's ``math.Log``, ``Log2``, ``Log10``, ``Exp`` and ``Pow``, bit for bit on amd64.

Prometheus's ``ln``, ``log2``, ``log10``, ``exp`` and the ``^`` operator call Go's math
package, whose results differ from the C library's in the last bit for a good share of
inputs. These are the same algorithms, step by step: ``Log`` and ``Exp`` as the amd64
assembly computes them (``Exp`` with fused multiply-adds, as on every x86-64 CPU with
FMA; the fused steps are computed exactly with fractions), ``Pow`` as ``math/pow.go``.
They are slower than ``math.log``; rules rarely call them.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction
from math import isnan

__all__ = ["go_exp", "go_log", "go_log2", "go_log10", "go_pow"]

_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_L1 = 6.666666666666735130e-01
_L2 = 3.999999999940941908e-01
_L3 = 2.857142874366239149e-01
_L4 = 2.222219843214978396e-01
_L5 = 1.818357216161805012e-01
_L6 = 1.531383769920937332e-01
_L7 = 1.479819860511658591e-01
_HSQRT2 = 7.07106781186547524401e-01
_INV_LN2 = 1.4426950408889634  # 1/Ln2 folded exactly by the Go compiler, then rounded
_INV_LN10 = 0.4342944819032518  # 1/Ln10, likewise
_HALF_BITS = 0x3FE0000000000000


def _bits(x: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", x))[0])


def _float(b: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", b))[0])


def go_log(x: float) -> float:
    """``math.Log`` (amd64 assembly)."""
    b = _bits(x)
    if b & 0x7FFFFFFFFFFFFFFF == 0:
        return -math.inf
    if b >> 63:
        return math.nan
    if b >= 0x7FF0000000000000:
        return x  # +Inf or NaN
    f1 = _float((b & 0x000FFFFFFFFFFFFF) | _HALF_BITS)
    k = float(((b >> 52) & 0x7FF) - 0x3FE)
    if f1 <= _HSQRT2:  # the assembly's "not less than" comparison
        k -= 1.0
        f1 *= 2.0
    f = f1 - 1.0
    s = f / (2.0 + f)
    s2 = s * s
    s4 = s2 * s2
    t1 = s2 * (_L1 + s4 * (_L3 + s4 * (_L5 + s4 * _L7)))
    t2 = s4 * (_L2 + s4 * (_L4 + s4 * _L6))
    r = t1 + t2
    hfsq = 0.5 * f * f
    return k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)


def go_log2(x: float) -> float:
    """``math.Log2``: exact for powers of two, else ``Log(frac) * (1/Ln2) + exp``."""
    frac, exp = math.frexp(x)
    if frac == 0.5:
        return float(exp - 1)
    return go_log(frac) * _INV_LN2 + float(exp)


def go_log10(x: float) -> float:
    """``math.Log10``: ``Log(x) * (1/Ln10)``."""
    return go_log(x) * _INV_LN10


_LN2U = 0.69314718055966295651160180568695068359375
_LN2L = 0.28235290563031577122588448175013436025525412068e-12
_LOG2E = 1.4426950408889634073599246810018920
_OVERFLOW = 7.09782712893384e02
_E = (
    2.4801587301587301587e-5,
    1.9841269841269841270e-4,
    1.3888888888888888889e-3,
    8.3333333333333333333e-3,
    4.1666666666666666667e-2,
    1.6666666666666666667e-1,
    0.5,
    1.0,
)


def _fma(a: float, b: float, c: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
        return a * b + c  # only reached on the way to an underflow, where it cannot matter
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    try:
        return float(exact)
    except OverflowError:
        return math.copysign(math.inf, exact)


def go_exp(x: float) -> float:
    """``math.Exp`` (amd64 assembly, FMA path)."""
    if isnan(x) or x == math.inf:
        return x
    if x == -math.inf:
        return 0.0
    if x > _OVERFLOW:
        return math.inf
    kf = x * _LOG2E
    k = round(kf) if -(2.0**31) <= kf < 2.0**31 else -(2**31)  # CVTSD2SL, round to even
    fk = float(k)
    r = _fma(-fk, _LN2U, x)
    r = _fma(-fk, _LN2L, r)
    r *= 0.0625
    p = _E[0]
    for c in _E[1:]:
        p = _fma(p, r, c)
    r *= p
    for _ in range(3):
        r *= r + 2.0
    r = _fma(r, r + 2.0, 1.0)
    e = k + 0x3FF
    if e <= 0:
        if e < -52:
            return 0.0
        r *= _float((e + 0x3FE) << 52)
        e = 1
    elif e >= 0x7FF:
        return math.inf
    return r * _float(e << 52)


def _is_odd_int(y: float) -> bool:
    if abs(y) >= 2.0**53:
        return False
    frac, whole = math.modf(y)
    return frac == 0 and int(whole) & 1 == 1


def _ldexp(frac: float, exp: int) -> float:
    try:
        return math.ldexp(frac, exp)
    except OverflowError:
        return math.copysign(math.inf, frac)


def go_pow(x: float, y: float) -> float:
    """``math.Pow``, special cases and all."""
    if y == 0 or x == 1:
        return 1.0
    if y == 1:
        return x
    if isnan(x) or isnan(y):
        return math.nan
    if x == 0:
        if y < 0:
            return math.copysign(math.inf, x) if _is_odd_int(y) else math.inf
        return x if _is_odd_int(y) else 0.0
    if math.isinf(y):
        if x == -1:
            return 1.0
        return 0.0 if (abs(x) < 1) == (y > 0) else math.inf
    if math.isinf(x):
        if x < 0:
            return go_pow(-0.0, -y)
        return 0.0 if y < 0 else math.inf
    if y == 0.5:
        return math.sqrt(x) if x >= 0 else math.nan
    if y == -0.5:
        root = math.sqrt(x) if x >= 0 else math.nan
        return math.inf if root == 0 else 1 / root
    yf, yi = math.modf(abs(y))
    if yf != 0 and x < 0:
        return math.nan
    if yi >= 2.0**63:
        if x == -1:
            return 1.0
        return 0.0 if (abs(x) < 1) == (y > 0) else math.inf
    a1 = 1.0
    ae = 0
    if yf != 0:
        if yf > 0.5:
            yf -= 1
            yi += 1
        a1 = go_exp(yf * go_log(x))
    x1, xe = math.frexp(x)
    i = int(yi)
    while i != 0:
        if xe < -(1 << 12) or xe > (1 << 12):
            ae += xe
            break
        if i & 1 == 1:
            a1 *= x1
            ae += xe
        x1 *= x1
        xe <<= 1
        if x1 < 0.5:
            x1 += x1
            xe -= 1
        i >>= 1
    if y < 0:
        a1 = 1 / a1
        ae = -ae
    return _ldexp(a1, ae)
