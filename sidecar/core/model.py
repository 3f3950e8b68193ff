"""Small typed values that the stages hand to each other.

Stages never reach into each other's internals; they pass these. Timestamps inside the
sidecar are integer milliseconds since the Unix epoch, as in Prometheus, so that window
arithmetic matches Prometheus to the last bit.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "STALE_NAN",
    "ActionKind",
    "Alert",
    "AlertStatus",
    "LabelSet",
    "MetricKind",
    "MetricMeta",
    "ScrapeFacts",
    "Snapshot",
    "fingerprint",
    "is_stale",
    "labelset",
    "metric_name",
]

LabelSet = tuple[tuple[str, str], ...]
"""A series' labels, ``__name__`` included, sorted by label name: hashable and cheap."""

MetricKind = Literal["gauge", "counter", "untyped", "info", "summary"]
AlertStatus = Literal["firing", "resolved"]
ActionKind = Literal["circuit_break", "circuit_reset", "cache_flush"]

# Prometheus marks a series that ended with this exact NaN bit pattern (value.StaleNaN).
_STALE_BITS = 0x7FF0000000000002
_STALE_BYTES = struct.pack("<Q", _STALE_BITS)
STALE_NAN: float = struct.unpack("<d", _STALE_BYTES)[0]


def is_stale(value: float) -> bool:
    """Tell a staleness marker from an ordinary NaN (both compare unequal to themselves)."""
    return math.isnan(value) and struct.pack("<d", value) == _STALE_BYTES


def labelset(labels: Mapping[str, str]) -> LabelSet:
    """Build the canonical, sorted label tuple from a mapping."""
    return tuple(sorted(labels.items()))


def metric_name(labels: LabelSet) -> str:
    """Return the ``__name__`` of a label set, or ``""``."""
    for k, v in labels:
        if k == "__name__":
            return v
    return ""


_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's alert fingerprint: FNV-1a 64 over sorted names and values.

    Each name and each value is followed by a 0xFF byte (Prometheus ``labels.SeparatorByte``),
    and the hash is printed as 16 lowercase hex digits, as Alertmanager's ``Fingerprint.String``.
    """
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                h = ((h ^ byte) * _FNV_PRIME) & _MASK
            h = ((h ^ 0xFF) * _FNV_PRIME) & _MASK
    return f"{h:016x}"


@dataclass(frozen=True, slots=True)
class MetricMeta:
    """What the exposition says about a metric family: its type and help sentence."""

    kind: MetricKind
    help: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One successful scrape, flattened: every sample with the metric metadata."""

    timestamp_ms: int
    samples: dict[LabelSet, float]
    meta: dict[str, MetricMeta]
    body_bytes: int
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert in Alertmanager's webhook shape, as the receiver acts on it."""

    status: AlertStatus
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: dt.datetime
    ends_at: dt.datetime | None = None
    generator_url: str = ""
    fingerprint: str = field(kw_only=True)
    """The alert's identity, fixed where it enters the sidecar (the webhook, the rule
    engine, the journal) so that memory, journal and replay agree on it: Alertmanager's
    own when it sent one, else ``fingerprint(labels)``."""


@dataclass(frozen=True, slots=True)
class ScrapeFacts:
    """The last scrape as the status page and logs describe it."""

    url: str
    interval_s: float
    up: bool | None = None
    """None until the first scrape has finished."""
    time_ms: int | None = None
    duration_s: float | None = None
    body_bytes: int | None = None
    series: int | None = None
    """Samples the last successful scrape produced."""
    reason: str = ""
    error: str = ""

    @property
    def health(self) -> Literal["up", "down", "unknown"]:
        """``up``, ``down`` or ``unknown``, as Prometheus shows a target."""
        return "unknown" if self.up is None else "up" if self.up else "down"
