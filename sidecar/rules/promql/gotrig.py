"""Go's trigonometric functions, bit for bit (``math`` of Go 1.19 on amd64).

Prometheus's ``sin``, ``cos``, ``tan``, ``asin``, ``acos``, ``atan`` and the ``atan2``
operator call Go's math package, which on amd64 computes them in plain Go with the Cephes
algorithms, not with the C library Python's ``math`` wraps; the two differ in the last
bit for many inputs (``sin(10)``: Go -0.5440211108893699, C -0.5440211108893698). These
are the same steps in the same order: argument reduction by pi/4 in three parts below
2**29 and Payne-Hanek reduction (with the binary digits of 4/pi, computed here) above,
the same polynomials and rational approximations (the hyperbolic functions are in
``gohyper``). Go does not fuse multiply-adds in this code on amd64, so each operation
rounds as Python's does.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction
from math import isinf, isnan

__all__ = [
    "go_acos",
    "go_asin",
    "go_atan",
    "go_atan2",
    "go_cos",
    "go_sin",
    "go_tan",
]

_M64 = (1 << 64) - 1


def _pi_fixed(bits: int) -> int:
    """floor(pi * 2**bits), by Machin's formula in integers (with guard bits)."""
    guard = 64
    one = 1 << (bits + guard)

    def arctan_inv(n: int) -> int:
        total = term = one // n
        k, sign, n2 = 1, -1, n * n
        while term:
            term //= n2
            total += sign * (term // (2 * k + 1))
            k += 1
            sign = -sign
        return total

    return (16 * arctan_inv(5) - 4 * arctan_inv(239)) >> guard


_FRACTION_WORDS = 19
_PREC = 64 * (_FRACTION_WORDS + 2)
_PI = _pi_fixed(_PREC)
# 4/pi as 20 64-bit words: the integer part, then 19 words of its binary fraction.
_FOUR_OVER_PI = (4 << (2 * _PREC)) // _PI >> (_PREC - 64 * _FRACTION_WORDS)
_M_PI4 = tuple(
    (_FOUR_OVER_PI >> (64 * (_FRACTION_WORDS - k))) & _M64 for k in range(_FRACTION_WORDS + 1)
)
# Go folds the constant 4/Pi exactly and rounds it once: the correctly rounded quotient.
_4_OVER_PI = float(Fraction(4 << _PREC, _PI))

_PI4A = 7.85398125648498535156e-1
_PI4B = 3.77489470793079817668e-8
_PI4C = 2.69515142907905952645e-15
_REDUCE_THRESHOLD = float(1 << 29)

_SIN = (
    1.58962301576546568060e-10,
    -2.50507477628578072866e-8,
    2.75573136213857245213e-6,
    -1.98412698295895385996e-4,
    8.33333333332211858878e-3,
    -1.66666666666666307295e-1,
)
_COS = (
    -1.13585365213876817300e-11,
    2.08757008419747316778e-9,
    -2.75573141792967388112e-7,
    2.48015872888517045348e-5,
    -1.38888888888730564116e-3,
    4.16666666666665929218e-2,
)


def _bits(x: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", x))[0])


def _float(b: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", b & _M64))[0])


def _mul64(a: int, b: int) -> tuple[int, int]:
    p = a * b
    return p >> 64, p & _M64


def _trig_reduce(x: float) -> tuple[int, float]:
    """Payne-Hanek: the octant ``j`` and the remainder ``z`` of ``x`` modulo pi/4."""
    pi4 = math.pi / 4
    if x < pi4:
        return 0, x
    ix = _bits(x)
    exp = ((ix >> 52) & 0x7FF) - 1023 - 52
    ix = (ix & ~(0x7FF << 52) & _M64) | (1 << 52)
    digit, bitshift = (exp + 61) // 64, (exp + 61) % 64
    m = _M_PI4

    def word(k: int) -> int:
        # Go's shift by 64 gives 0, as Python's does for a 64-bit word.
        return ((m[k] << bitshift) & _M64) | (m[k + 1] >> (64 - bitshift))

    z0, z1, z2 = word(digit), word(digit + 1), word(digit + 2)
    z2hi, _ = _mul64(z2, ix)
    z1hi, z1lo = _mul64(z1, ix)
    z0lo = (z0 * ix) & _M64
    lo = z1lo + z2hi
    carry = lo >> 64
    lo &= _M64
    hi = (z0lo + z1hi + carry) & _M64
    j = hi >> 61
    hi = ((hi << 3) & _M64) | (lo >> 61)
    lz = 64 - hi.bit_length()
    e = 1023 - (lz + 1)
    hi = ((hi << (lz + 1)) & _M64) | (lo >> (64 - (lz + 1)))
    hi >>= 64 - 52
    hi |= e << 52
    z = _float(hi)
    if j & 1:
        j = (j + 1) & 7
        z -= 1
    return j, z * pi4


def _reduce(x: float) -> tuple[int, float]:
    if x >= _REDUCE_THRESHOLD:
        return _trig_reduce(x)
    j = int(x * _4_OVER_PI)
    y = float(j)
    if j & 1:
        j += 1
        y += 1
    return j, ((x - y * _PI4A) - y * _PI4B) - y * _PI4C


def _sin_poly(z: float, zz: float) -> float:
    s = _SIN
    return z + z * zz * ((((((s[0] * zz) + s[1]) * zz + s[2]) * zz + s[3]) * zz + s[4]) * zz + s[5])


def _cos_poly(zz: float) -> float:
    c = _COS
    return (
        1.0
        - 0.5 * zz
        + zz * zz * ((((((c[0] * zz) + c[1]) * zz + c[2]) * zz + c[3]) * zz + c[4]) * zz + c[5])
    )


def _reduce_odd(x: float) -> tuple[bool, int, float]:
    """Sin's and Tan's sign, octant and reduced argument for a finite, non-zero ``x``."""
    sign = x < 0  # then -x, as Go does (abs() would be the same for a non-zero x)
    j, z = _reduce(-x if sign else x)
    return sign, j, z


def go_sin(x: float) -> float:
    """``math.Sin``."""
    if x == 0 or isnan(x):
        return x
    if isinf(x):
        return math.nan
    sign, j, z = _reduce_odd(x)
    j &= 7
    if j > 3:
        sign = not sign
        j -= 4
    zz = z * z
    y = _cos_poly(zz) if j in (1, 2) else _sin_poly(z, zz)
    return -y if sign else y


def go_cos(x: float) -> float:
    """``math.Cos``."""
    if isnan(x) or isinf(x):
        return math.nan
    x = abs(x)
    j, z = _reduce(x)
    j &= 7
    sign = False
    if j > 3:
        j -= 4
        sign = not sign
    if j > 1:
        sign = not sign
    zz = z * z
    y = _sin_poly(z, zz) if j in (1, 2) else _cos_poly(zz)
    return -y if sign else y


_TAN_P = (-1.30936939181383777646e4, 1.15351664838587416140e6, -1.79565251976484877988e7)
_TAN_Q = (
    1.0,
    1.36812963470692954678e4,
    -1.32089234440210967447e6,
    2.50083801823357915839e7,
    -5.38695755929454629881e7,
)


def go_tan(x: float) -> float:
    """``math.Tan``."""
    if x == 0 or isnan(x):
        return x
    if isinf(x):
        return math.nan
    sign, j, z = _reduce_odd(x)
    zz = z * z
    if zz > 1e-14:
        p, q = _TAN_P, _TAN_Q
        y = z + z * (
            zz
            * (((p[0] * zz) + p[1]) * zz + p[2])
            / ((((zz + q[1]) * zz + q[2]) * zz + q[3]) * zz + q[4])
        )
    else:
        y = z
    if j & 2:
        y = -1 / y
    return -y if sign else y


_MOREBITS = 6.123233995736765886130e-17
_TAN3PIO8 = 2.41421356237309504880


def _xatan(x: float) -> float:
    p0, p1, p2 = (
        -8.750608600031904122785e-01,
        -1.615753718733365076637e01,
        -7.500855792314704667340e01,
    )
    p3, p4 = -1.228866684490136173410e02, -6.485021904942025371773e01
    q0, q1, q2 = 2.485846490142306297962e01, 1.650270098316988542046e02, 4.328810604912902668951e02
    q3, q4 = 4.853903996359136964868e02, 1.945506571482613964425e02
    z = x * x
    z = (
        z
        * ((((p0 * z + p1) * z + p2) * z + p3) * z + p4)
        / (((((z + q0) * z + q1) * z + q2) * z + q3) * z + q4)
    )
    return x * z + x


def _satan(x: float) -> float:
    if x <= 0.66:
        return _xatan(x)
    if x > _TAN3PIO8:
        return math.pi / 2 - _xatan(1 / x) + _MOREBITS
    return math.pi / 4 + _xatan((x - 1) / (x + 1)) + 0.5 * _MOREBITS


def go_atan(x: float) -> float:
    """``math.Atan``."""
    if x == 0:
        return x
    return _satan(x) if x > 0 else -_satan(-x)


def go_asin(x: float) -> float:
    """``math.Asin``."""
    if x == 0:
        return x
    sign = x < 0
    if sign:  # not abs(): Go keeps -0 as it is
        x = -x
    if x > 1:
        return math.nan
    if isnan(x):
        return x
    temp = math.sqrt(1 - x * x)
    temp = math.pi / 2 - _satan(temp / x) if x > 0.7 else _satan(x / temp)
    return -temp if sign else temp


def go_acos(x: float) -> float:
    """``math.Acos``: pi/2 - Asin(x)."""
    return math.pi / 2 - go_asin(x)


def go_atan2(y: float, x: float) -> float:
    """``math.Atan2``."""
    if isnan(y) or isnan(x):
        return math.nan
    if y == 0:
        if x >= 0 and math.copysign(1.0, x) > 0:
            return math.copysign(0.0, y)
        return math.copysign(math.pi, y)
    if x == 0:
        return math.copysign(math.pi / 2, y)
    if isinf(x):
        if x > 0:
            return math.copysign(math.pi / 4 if isinf(y) else 0.0, y)
        return math.copysign(3 * math.pi / 4 if isinf(y) else math.pi, y)
    if isinf(y):
        return math.copysign(math.pi / 2, y)
    q = go_atan(y / x)
    if x < 0:
        return q + math.pi if q <= 0 else q - math.pi
    return q
