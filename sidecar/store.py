"""The series store: a bounded ring of (timestamp, value) per series.

Timestamps are integer milliseconds (``array('q')``), values doubles (``array('d')``),
so the rule engine can bisect a window without building objects. Retention is the
longest range any loaded rule reads plus the 5m lookback; older samples are dropped on
every ingest. A series absent from an ingest of its origin, or every series of an origin
whose scrape failed, gets Prometheus's staleness marker, so "no data" can be told apart
from "condition cleared". The total number of series is capped.

Readers (PromQL, the status page's charts, the breaker's condition, ``/metrics``) see the
store through ``StoreView`` and ``SeriesView``, not these classes: a series is read as a
window, the two arrays with the index bounds of ``[lo, hi]``, so a range function walks
the store's own memory without a copy or an object per sample.

The store's timeline is the wall clock. When it steps back (an NTP step, a VM
restored), an ingest comes at a time before the origin's last one: every sample stamped
after the new time is dropped from every series (``rewind``), logged as
``store.clock_stepped_back`` and counted, and the store goes on from there, so that it
never silently freezes on samples "older than the last". History since the step's
target time is lost (a rate reads it again after its range); nothing newer than now
is ever kept.

Each series has an ``origin``: ``"scrape"`` for the expvar view (what ``/metrics``
exports), or the id of a recording or alerting rule that produced it. Staleness is
decided per origin, as Prometheus decides it per scrape target and per rule.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from math import isnan
from typing import Protocol, TypeAlias

import structlog
from prometheus_client import CollectorRegistry, Counter

from sidecar.core.model import STALE_NAN, LabelSet, is_stale, metric_name

__all__ = [
    "MAX_T",
    "MIN_T",
    "SCRAPE",
    "IngestResult",
    "SampleWindow",
    "Series",
    "SeriesView",
    "Store",
    "StoreView",
]

log = structlog.get_logger(__name__)

SCRAPE = "scrape"
"""Origin of the series that came from the app's expvar endpoint."""

MIN_T = -(2**63)
"""The lowest timestamp a window can ask for: ``window(MIN_T, hi)`` is open below."""
MAX_T = 2**63 - 1
"""The highest timestamp a window can ask for: ``window(lo, MAX_T)`` is open above."""

# Compact a series' arrays once this many dropped samples sit before its head.
_COMPACT_AT = 256

SampleWindow: TypeAlias = tuple[Sequence[int], Sequence[float], int, int]
"""``(ts, vs, i, j)``: the samples are ``ts[i:j]`` (ms, ascending) and ``vs[i:j]``.

The sequences may be the store's own and longer than the window: read only ``[i, j)``,
only until the store is next written, and index rather than slice (a slice copies)."""


class SeriesView(Protocol):
    """One series as its readers see it."""

    @property
    def labels(self) -> LabelSet:
        """The series' labels, ``__name__`` included."""

    @property
    def stale(self) -> bool:
        """The newest sample is a staleness marker: the series has no current value."""

    def last(self) -> tuple[int, float] | None:
        """The newest sample, staleness marker included, or ``None``."""

    def window(self, lo: int, hi: int) -> SampleWindow:
        """The samples with ``lo <= t <= hi`` (both ends inclusive), markers included."""


class StoreView(Protocol):
    """The store as its readers see it: lookups, iteration and a change counter."""

    @property
    def generation(self) -> int:
        """Moves whenever a series is added or removed, so a reader can cache lookups."""

    def get(self, labels: LabelSet) -> SeriesView | None:
        """The series with exactly these labels."""

    def by_name(self, name: str) -> Iterator[SeriesView]:
        """Every series whose ``__name__`` is ``name``, oldest first."""

    def __iter__(self) -> Iterator[SeriesView]:
        """Every series, oldest first (Prometheus orders by series reference)."""

    def latest(self, origin: str = SCRAPE) -> Iterator[tuple[LabelSet, float]]:
        """The newest value of every live series of ``origin`` (what ``/metrics`` shows)."""


class Series:
    """One series' samples, oldest first; ``ts[head:]`` and ``vs[head:]`` are live.

    Implements ``SeriesView``; readers go through ``window`` rather than the arrays.
    """

    __slots__ = ("head", "labels", "name", "origin", "stale", "ts", "vs")

    def __init__(self, labels: LabelSet, origin: str) -> None:
        self.labels = labels
        self.name = metric_name(labels)
        self.origin = origin
        self.ts: array[int] = array("q")
        self.vs: array[float] = array("d")
        self.head = 0
        self.stale = False

    def __len__(self) -> int:
        return len(self.ts) - self.head

    def append(self, t: int, v: float) -> None:
        """Add a sample; one not newer than the last is ignored, as Prometheus does."""
        if len(self.ts) > self.head and t <= self.ts[-1]:
            return
        self.ts.append(t)
        self.vs.append(v)
        # Only a NaN can be the marker: most samples skip the bit check.
        self.stale = isnan(v) and is_stale(v)

    def cut(self, t: int) -> int:
        """Drop samples at ``t`` and later; return how many."""
        cut = bisect_left(self.ts, t, self.head)
        dropped = len(self.ts) - cut
        if dropped:
            del self.ts[cut:]
            del self.vs[cut:]
            self.stale = len(self.ts) > self.head and is_stale(self.vs[-1])
        return dropped

    def trim(self, min_t: int) -> bool:
        """Drop samples older than ``min_t``; return whether none is left."""
        cut = bisect_left(self.ts, min_t, self.head)
        if cut == self.head:
            return cut == len(self.ts)
        self.head = cut
        if self.head >= _COMPACT_AT and self.head * 2 >= len(self.ts):
            del self.ts[: self.head]
            del self.vs[: self.head]
            self.head = 0
        return self.head == len(self.ts)

    def window(self, lo: int, hi: int) -> SampleWindow:
        """The live arrays and the bounds ``[i, j)`` of the samples with ``lo <= t <= hi``."""
        ts = self.ts
        head = self.head
        n = len(ts)
        if n == head:
            return ts, self.vs, n, n
        # Most reads run up to the newest sample (an evaluation at "now") or from the
        # oldest (an instant lookup): those ends need no bisection.
        j = n if ts[n - 1] <= hi else bisect_right(ts, hi, head, n)
        i = head if lo <= ts[head] else bisect_left(ts, lo, head, j)
        return ts, self.vs, i, j

    def last(self) -> tuple[int, float] | None:
        """The newest sample, staleness marker included, or ``None``."""
        if len(self.ts) == self.head:
            return None
        return self.ts[-1], self.vs[-1]


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one ingest did: series written, new series refused by the cap, series staled."""

    written: int
    refused: int
    staled: int


class Store:
    """All series, bounded in time (``retention_ms``) and in count (``max_series``).

    Implements ``StoreView``; only the scraper and the rule engine write.
    """

    def __init__(
        self, retention_ms: int, max_series: int, registry: CollectorRegistry | None = None
    ) -> None:
        self.retention_ms = retention_ms
        self.max_series = max_series
        self._last: dict[str, int] = {}
        """Each origin's latest ingest time: one before it means the clock stepped back."""
        self._steps = Counter(
            "leak_sidecar_clock_steps_total",
            "Backward steps of the wall clock seen by the store; each dropped the samples "
            "stamped after the new time.",
            registry=registry,
        )
        self._series: dict[LabelSet, Series] = {}
        self._by_name: dict[str, dict[LabelSet, Series]] = {}
        self._by_origin: dict[str, dict[LabelSet, Series]] = {}
        self.generation = 0
        """Bumped whenever a series is added or removed, so selectors can cache matches."""

    def __len__(self) -> int:
        return len(self._series)

    def get(self, labels: LabelSet) -> Series | None:
        """The series with exactly these labels."""
        return self._series.get(labels)

    def by_name(self, name: str) -> Iterator[Series]:
        """Every series whose ``__name__`` is ``name``."""
        return iter(self._by_name.get(name, {}).values())

    def __iter__(self) -> Iterator[Series]:
        return iter(self._series.values())

    def ingest(
        self, t: int, samples: Mapping[LabelSet, float], origin: str = SCRAPE
    ) -> IngestResult:
        """Write one scrape's (or one rule evaluation's) samples at time ``t``.

        Series of ``origin`` missing from ``samples`` get a staleness marker at ``t``.
        """
        self._check_clock(t, origin)
        written = refused = mine = 0
        series = self._series
        for labels, value in samples.items():
            s = series.get(labels)
            if s is None:
                if len(series) >= self.max_series:
                    refused += 1
                    continue
                s = self._add(labels, origin)
            s.append(t, value)
            written += 1
            mine += s.origin == origin
        staled = 0
        group = self._by_origin.get(origin, {})
        # When every series of the origin was just written, none vanished: no pass.
        if mine != len(group):
            for s in group.values():
                if not s.stale and s.labels not in samples:
                    s.append(t, STALE_NAN)
                    staled += 1
        if origin == SCRAPE:
            # Once per scrape is often enough; rule outputs expire on the same sweep.
            self.expire(t)
        return IngestResult(written, refused, staled)

    def mark_stale(self, t: int, origin: str = SCRAPE) -> int:
        """End every live series of ``origin`` at ``t`` (a failed scrape); return how many."""
        self._check_clock(t, origin)
        n = 0
        for s in self._by_origin.get(origin, {}).values():
            if not s.stale:
                s.append(t, STALE_NAN)
                n += 1
        self.expire(t)
        return n

    def _check_clock(self, t: int, origin: str) -> None:
        last = self._last.get(origin)
        if last is not None and t < last:
            self.rewind(t)
            self._steps.inc()
            log.warning(
                "store.clock_stepped_back", origin=origin, last_ms=last, now_ms=t, by_ms=last - t
            )
        self._last[origin] = t

    def rewind(self, t: int) -> int:
        """Drop every sample at ``t`` or later, from every series; return how many."""
        dropped = sum(s.cut(t) for s in self._series.values())
        for origin, last in self._last.items():
            self._last[origin] = min(last, t)
        self._drop_empty()
        return dropped

    def expire(self, now: int) -> None:
        """Drop samples past retention, and series with nothing left in it."""
        min_t = now - self.retention_ms
        self._drop([s for s in self._series.values() if s.trim(min_t)])

    def _drop_empty(self) -> None:
        self._drop([s for s in self._series.values() if not s])

    def _drop(self, dead: list[Series]) -> None:
        for s in dead:
            del self._series[s.labels]
            for index, key in ((self._by_name, s.name), (self._by_origin, s.origin)):
                group = index[key]
                del group[s.labels]
                if not group:
                    del index[key]
        if dead:
            self.generation += 1

    def latest(self, origin: str = SCRAPE) -> Iterator[tuple[LabelSet, float]]:
        """The newest value of every live series of ``origin`` (what ``/metrics`` shows)."""
        for s in self._by_origin.get(origin, {}).values():
            if not s.stale and len(s):
                yield s.labels, s.vs[-1]

    def _add(self, labels: LabelSet, origin: str) -> Series:
        s = Series(labels, origin)
        self._series[labels] = s
        self._by_name.setdefault(s.name, {})[labels] = s
        self._by_origin.setdefault(origin, {})[labels] = s
        self.generation += 1
        return s
