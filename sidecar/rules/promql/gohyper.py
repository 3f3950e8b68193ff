"""Go's hyperbolic functions and ``Log1p``, bit for bit (``math`` of Go 1.19 on amd64).

Prometheus's ``sinh``, ``cosh``, ``tanh``, ``asinh``, ``acosh`` and ``atanh`` call Go's
math package, which computes them in plain Go (Cephes and FreeBSD algorithms) on top of
its ``Exp``, ``Log``, ``Sqrt`` and ``Log1p``; the C library's results differ in the last
bit for many inputs. These are the same steps in the same order, with ``Exp`` and ``Log``
from ``gomath`` and ``Sqrt`` exact in both languages. Go keeps the sign of -0 through
``if x < 0 { x = -x }``, so ``sinh(-0)`` is -0 here too.
"""

from __future__ import annotations

import math
import struct
from math import isinf, isnan

from sidecar.rules.promql.gomath import go_exp, go_log

__all__ = ["go_acosh", "go_asinh", "go_atanh", "go_cosh", "go_log1p", "go_sinh", "go_tanh"]

_M64 = (1 << 64) - 1


def _bits(x: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", x))[0])


def _float(b: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", b & _M64))[0])


def go_sinh(x: float) -> float:
    """``math.Sinh``."""
    sign = x < 0
    if sign:  # not abs(): Go keeps -0 as it is
        x = -x
    if x > 21:
        temp = go_exp(x) * 0.5
    elif x > 0.5:
        ex = go_exp(x)
        temp = (ex - 1 / ex) * 0.5
    else:
        sq = x * x
        temp = (
            (
                (-0.2630563213397497062819489e2 * sq - 0.2894211355989563807284660366e4) * sq
                - 0.8991272022039509355398013511e5
            )
            * sq
            - 0.6307673640497716991184787251e6
        ) * x
        temp = temp / (
            ((sq - 0.173678953558233699533450911e3) * sq + 0.1521517378790019070696485176e5) * sq
            - 0.6307673640497716991212077277e6
        )
    return -temp if sign else temp


def go_cosh(x: float) -> float:
    """``math.Cosh``."""
    x = abs(x)
    if x > 21:
        return go_exp(x) * 0.5
    ex = go_exp(x)
    return (ex + 1 / ex) * 0.5


def go_tanh(x: float) -> float:
    """``math.Tanh``."""
    z = abs(x)
    if z > 0.5 * 8.8029691931113054295988e01:
        return -1.0 if x < 0 else 1.0
    if z >= 0.625:
        s = go_exp(2 * z)
        z = 1 - 2 / (s + 1)
        return -z if x < 0 else z
    if x == 0:
        return x
    s = x * x
    return x + x * s * (
        (-9.64399179425052238628e-1 * s - 9.92877231001918586564e1) * s - 1.61468768441708447952e3
    ) / (
        ((s + 1.12811678491632931402e2) * s + 2.23548839060100448583e3) * s
        + 4.84406305325125486048e3
    )


_LN2 = 6.93147180559945286227e-01


def go_log1p(x: float) -> float:
    """``math.Log1p``."""
    if x < -1 or isnan(x):
        return math.nan
    if x == -1:
        return -math.inf
    if x == math.inf:
        return math.inf
    ln2_hi, ln2_lo = 6.93147180369123816490e-01, 1.90821492927058770002e-10
    absx = abs(x)
    f = 0.0
    iu = 0
    k = 1
    if absx < 4.142135623730950488017e-01:
        if absx < 2.0**-29:
            if absx < 2.0**-54:
                return x
            return x - x * x * 0.5
        if x > -2.928932188134524755992e-01:
            k, f, iu = 0, x, 1
    c = 0.0
    if k != 0:
        if absx < 2.0**53:
            u = 1.0 + x
            iu = _bits(u)
            k = (iu >> 52) - 1023
            c = 1.0 - (u - x) if k > 0 else x - (u - 1.0)
            c /= u
        else:
            u = x
            iu = _bits(u)
            k = (iu >> 52) - 1023
            c = 0.0
        iu &= 0x000FFFFFFFFFFFFF
        if iu < 0x0006A09E667F3BCD:
            u = _float(iu | 0x3FF0000000000000)
        else:
            k += 1
            u = _float(iu | 0x3FE0000000000000)
            iu = (0x0010000000000000 - iu) >> 2
        f = u - 1.0
    hfsq = 0.5 * f * f
    fk = float(k)
    if iu == 0:
        if f == 0:
            if k == 0:
                return 0.0
            c += fk * ln2_lo
            return fk * ln2_hi + c
        r = hfsq * (1.0 - 0.66666666666666666 * f)
        if k == 0:
            return f - r
        return fk * ln2_hi - ((r - (fk * ln2_lo + c)) - f)
    s = f / (2.0 + f)
    z = s * s
    r = z * (
        6.666666666666735130e-01
        + z
        * (
            3.999999999940941908e-01
            + z
            * (
                2.857142874366239149e-01
                + z
                * (
                    2.222219843214978396e-01
                    + z
                    * (
                        1.818357216161805012e-01
                        + z * (1.531383769920937332e-01 + z * 1.479819860511658591e-01)
                    )
                )
            )
        )
    )
    if k == 0:
        return f - (hfsq - s * (hfsq + r))
    return fk * ln2_hi - ((hfsq - (s * (hfsq + r) + (fk * ln2_lo + c))) - f)


def go_asinh(x: float) -> float:
    """``math.Asinh``."""
    if isnan(x) or isinf(x):
        return x
    sign = x < 0
    if sign:  # not abs(): Go keeps -0 as it is
        x = -x
    if x > 2.0**28:
        temp = go_log(x) + _LN2
    elif x > 2:
        temp = go_log(2 * x + 1 / (math.sqrt(x * x + 1) + x))
    elif x < 2.0**-28:
        temp = x
    else:
        temp = go_log1p(x + x * x / (1 + math.sqrt(1 + x * x)))
    return -temp if sign else temp


def go_acosh(x: float) -> float:
    """``math.Acosh``."""
    if x < 1 or isnan(x):
        return math.nan
    if x == 1:
        return 0.0
    if x >= 2.0**28:
        return go_log(x) + _LN2
    if x > 2:
        return go_log(2 * x - 1 / (x + math.sqrt(x * x - 1)))
    t = x - 1
    return go_log1p(t + math.sqrt(2 * t + t * t))


def go_atanh(x: float) -> float:
    """``math.Atanh``."""
    if x < -1 or x > 1 or isnan(x):
        return math.nan
    if x == 1:
        return math.inf
    if x == -1:
        return -math.inf
    sign = x < 0
    if sign:  # not abs(): Go keeps -0 as it is
        x = -x
    if x < 2.0**-28:
        temp = x
    elif x < 0.5:
        temp = x + x
        temp = 0.5 * go_log1p(temp + temp * x / (1 - x))
    else:
        temp = 0.5 * go_log1p((x + x) / (1 - x))
    return -temp if sign else temp
