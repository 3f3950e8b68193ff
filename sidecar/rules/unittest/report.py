"""Text of ``promtool test rules`` failures: durations and alert lists as Go prints them.

A failure report must read the same from promtool and from the sidecar, so a CI log
can be compared line by line: ``model.Duration`` (``1h30m``) for eval times,
``time.Duration`` (``1m30s``) for evaluation steps, and promtool's indented alert list.
"""

from __future__ import annotations

from collections.abc import Sequence

from sidecar.core.model import LabelSet
from sidecar.gocompat.gofmt import go_labels

__all__ = ["alerts_text", "go_duration", "indent_lines", "model_duration"]

_UNITS = (
    ("y", 365 * 86_400_000, True),
    ("w", 7 * 86_400_000, True),
    ("d", 86_400_000, False),
    ("h", 3_600_000, False),
    ("m", 60_000, False),
    ("s", 1000, False),
    ("ms", 1, False),
)


def model_duration(ms: int) -> str:
    """Prometheus's ``model.Duration.String``: ``90s`` -> ``1m30s``, ``0`` -> ``0s``."""
    if ms == 0:
        return "0s"
    out = []
    for unit, mult, exact in _UNITS:
        if exact and ms % mult:
            continue
        if ms // mult > 0:
            out.append(f"{ms // mult}{unit}")
            ms -= ms // mult * mult
    return "".join(out)


def go_duration(ms: int) -> str:
    """Go's ``time.Duration.String`` of whole milliseconds: ``1m0s``, ``1.5s``, ``500ms``."""
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    if ms < 1000:
        return f"{sign}{ms}ms"
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, frac = divmod(rest, 1000)
    seconds = f"{s}" + (f".{frac:03d}".rstrip("0") if frac else "") + "s"
    if h:
        return f"{sign}{h}h{m}m{seconds}"
    if m:
        return f"{sign}{m}m{seconds}"
    return sign + seconds


def indent_lines(lines: str, indent: str) -> str:
    """Prefix every line but the first with ``indent`` (promtool's ``indentLines``)."""
    return ("\n" + indent).join(lines.split("\n"))


def alerts_text(alerts: Sequence[tuple[LabelSet, LabelSet]]) -> str:
    """promtool's ``labelsAndAnnotations.String``, indented as in its failure message."""
    if not alerts:
        return "[]"
    parts = []
    for i, (labels, notes) in enumerate(alerts):
        one = f"Labels:{go_labels(labels)}\nAnnotations:{go_labels(notes)}"
        parts.append(f"{i}:" + indent_lines("\n" + one, "  "))
    text = "[\n" + ",\n".join(parts) + "\n]"
    return indent_lines(text, "            ")
