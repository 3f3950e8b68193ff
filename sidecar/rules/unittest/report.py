"""Text of ``promtool test rules`` failures: alert lists as promtool prints them.

A failure report must read the same from promtool and from the sidecar, so a CI log
can be compared line by line. Its durations come from ``sidecar.core.durations``:
``format_duration_ms`` (Prometheus's ``model.Duration``, ``1h30m``) for eval times,
``go_duration`` (Go's ``time.Duration``, ``1h30m0s``) for evaluation steps.
"""

from __future__ import annotations

from collections.abc import Sequence

from sidecar.core.model import LabelSet
from sidecar.gocompat.gofmt import go_labels

__all__ = ["alerts_text", "indent_lines"]


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
