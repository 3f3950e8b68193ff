"""Helpers for the PromQL tests: load series written in promtool's notation into a Store."""

from __future__ import annotations

import re

from sidecar.model import STALE_NAN, LabelSet
from sidecar.store import Store

__all__ = ["expand_values", "load", "parse_labels"]

_ITEM = re.compile(
    r"^(?:(?P<blank>_)(?:x(?P<bn>\d+))?|(?P<v>[-+]?[^x+\-]+?|[-+]?Inf|NaN|stale)"
    r"(?:(?P<step>[-+][^x]+)?x(?P<n>\d+))?)$"
)
_LABELS = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')


def _num(text: str) -> float:
    return STALE_NAN if text == "stale" else float(text)


def expand_values(text: str) -> list[float | None]:
    """``1+2x3 _ stale _x2`` -> values, ``None`` for a gap (promtool's expanding notation)."""
    out: list[float | None] = []
    for item in text.split():
        m = _ITEM.match(item)
        if m is None:
            raise ValueError(f"bad series item {item!r}")
        if m.group("blank"):
            out.extend([None] * (int(m.group("bn")) if m.group("bn") else 1))
            continue
        v = _num(m.group("v"))
        if m.group("n") is None:
            out.append(v)
            continue
        step = float(m.group("step")) if m.group("step") else 0.0
        for _ in range(int(m.group("n")) + 1):
            out.append(v)
            v += step
    return out


def parse_labels(text: str) -> LabelSet:
    """``name{a="b"}`` -> a sorted label tuple."""
    name, _, rest = text.partition("{")
    labels = dict(_LABELS.findall(rest))
    if name.strip():
        labels["__name__"] = name.strip()
    return tuple(sorted(labels.items()))


def load(series: dict[str, str], interval_ms: int = 60_000, store: Store | None = None) -> Store:
    """A store holding each series' values at ``0, interval, 2*interval, ...``."""
    store = store or Store(retention_ms=10**15, max_series=100_000)
    for desc, values in series.items():
        labels = parse_labels(desc)
        for i, v in enumerate(expand_values(values)):
            if v is not None:
                store.ingest(i * interval_ms, {labels: v}, origin=f"test:{desc}")
    return store
