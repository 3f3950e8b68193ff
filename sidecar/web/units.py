"""Quantities for people: bytes in binary units, amounts with an SI suffix, percentages.

One home for how a number is shown, so that it reads the same wherever it appears: the
status page's chart axes and tables and the demo's narration print ``342M``, ``2.5 GiB``
and ``83%`` from these functions. Durations have theirs in ``sidecar.core.durations``
(Prometheus's syntax, ``15m43s``); a sample value shown as Prometheus would print it is
the status page's ``format_value``.
"""

from __future__ import annotations

import math

__all__ = ["format_bytes", "format_percent", "si"]

_BINARY = ("KiB", "MiB", "GiB", "TiB")


def format_bytes(n: float) -> str:
    """Bytes in binary units to one decimal: ``512 B``, ``12.3 KiB``, ``2.5 GiB``."""
    if not math.isfinite(n):
        return f"{n} B"
    if abs(n) < 1024:
        return f"{n:.0f} B"
    value = float(n)
    for unit in _BINARY:
        value /= 1024
        if abs(value) < 1024 or unit == _BINARY[-1]:
            break
    return f"{value:.1f} {unit}"


def si(value: float) -> str:
    """Three significant digits and an SI suffix: ``1.23M``, ``245k``, ``0.02``."""
    # Round first, so that 999.9 becomes "1k" rather than "1e+03".
    rounded = float(f"{value:.3g}")
    magnitude = abs(rounded)
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if scale <= magnitude < scale * 1000:
            return f"{rounded / scale:.3g}{suffix}"
    return f"{rounded:.3g}"


def format_percent(ratio: float) -> str:
    """A ratio as a whole percentage: ``0.8312`` -> ``83%``."""
    return f"{ratio:.0%}"
