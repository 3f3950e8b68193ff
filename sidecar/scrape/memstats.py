"""Go's ``memstats`` expvar under client_golang's metric names, units, types and help.

``expvar`` publishes ``runtime.MemStats`` as ``memstats``. A Go service instrumented
with client_golang exports the same numbers as ``go_memstats_*`` and ``go_gc_*``;
using those names here means dashboards and rules written for client_golang work on
the sidecar unchanged. Help texts are client_golang's (v1.20 and later) word for word;
``go_memstats_lookups_total`` and ``go_memstats_gc_cpu_fraction``, which client_golang
no longer exports, keep the help of the last versions that did.

``go_gc_duration_seconds`` is rebuilt exactly: client_golang fills it from
``debug.ReadGCStats``, whose count, sum and min/25%/50%/75%/max quantiles come from the
very ``NumGC``, ``PauseTotalNs`` and ``PauseNs`` ring that ``memstats`` carries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

import msgspec

from sidecar.core.model import LabelSet, MetricKind, MetricMeta
from sidecar.scrape.jsonscan import BAD_JSON, LBRACKET, first_byte, number, uint

__all__ = [
    "DERIVED",
    "FIELDS",
    "GC_SUMMARY",
    "META",
    "USED",
    "MemstatsField",
    "Sample",
    "go_seconds",
    "samples",
]


@dataclass(frozen=True, slots=True)
class MemstatsField:
    """One ``runtime.MemStats`` field and the metric it becomes."""

    field: str
    name: str
    kind: MetricKind
    help: str
    ns_to_seconds: bool = False

    @property
    def meta(self) -> MetricMeta:
        """The family's type and help."""
        return MetricMeta(self.kind, self.help)


def _g(field: str, name: str, help_: str) -> MemstatsField:
    return MemstatsField(field, "go_memstats_" + name, "gauge", help_)


def _c(field: str, name: str, help_: str) -> MemstatsField:
    return MemstatsField(field, "go_memstats_" + name, "counter", help_)


FIELDS: tuple[MemstatsField, ...] = (
    _g(
        "Alloc",
        "alloc_bytes",
        "Number of bytes allocated in heap and currently in use. Equals to "
        "/memory/classes/heap/objects:bytes.",
    ),
    _c(
        "TotalAlloc",
        "alloc_bytes_total",
        "Total number of bytes allocated in heap until now, even if released "
        "already. Equals to /gc/heap/allocs:bytes.",
    ),
    _g(
        "Sys",
        "sys_bytes",
        "Number of bytes obtained from system. Equals to /memory/classes/total:byte.",
    ),
    _c(
        "Lookups",
        "lookups_total",
        "Total number of pointer lookups.",
    ),
    _c(
        "Mallocs",
        "mallocs_total",
        "Total number of heap objects allocated, both live and gc-ed. "
        "Semantically a counter version for go_memstats_heap_objects gauge. "
        "Equals to /gc/heap/allocs:objects + /gc/heap/tiny/allocs:objects.",
    ),
    _c(
        "Frees",
        "frees_total",
        "Total number of heap objects frees. Equals to /gc/heap/frees:objects +"
        " /gc/heap/tiny/allocs:objects.",
    ),
    _g(
        "HeapAlloc",
        "heap_alloc_bytes",
        "Number of heap bytes allocated and currently in use, same as "
        "go_memstats_alloc_bytes. Equals to /memory/classes/heap/objects:bytes.",
    ),
    _g(
        "HeapSys",
        "heap_sys_bytes",
        "Number of heap bytes obtained from system. Equals to "
        "/memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes"
        " + /memory/classes/heap/released:bytes + "
        "/memory/classes/heap/free:bytes.",
    ),
    _g(
        "HeapIdle",
        "heap_idle_bytes",
        "Number of heap bytes waiting to be used. Equals to "
        "/memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.",
    ),
    _g(
        "HeapInuse",
        "heap_inuse_bytes",
        "Number of heap bytes that are in use. Equals to "
        "/memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes",
    ),
    _g(
        "HeapReleased",
        "heap_released_bytes",
        "Number of heap bytes released to OS. Equals to /memory/classes/heap/released:bytes.",
    ),
    _g(
        "HeapObjects",
        "heap_objects",
        "Number of currently allocated objects. Equals to /gc/heap/objects:objects.",
    ),
    _g(
        "StackInuse",
        "stack_inuse_bytes",
        "Number of bytes obtained from system for stack allocator in non-CGO "
        "environments. Equals to /memory/classes/heap/stacks:bytes.",
    ),
    _g(
        "StackSys",
        "stack_sys_bytes",
        "Number of bytes obtained from system for stack allocator. Equals to "
        "/memory/classes/heap/stacks:bytes + /memory/classes/os-stacks:bytes.",
    ),
    _g(
        "MSpanInuse",
        "mspan_inuse_bytes",
        "Number of bytes in use by mspan structures. Equals to "
        "/memory/classes/metadata/mspan/inuse:bytes.",
    ),
    _g(
        "MSpanSys",
        "mspan_sys_bytes",
        "Number of bytes used for mspan structures obtained from system. Equals"
        " to /memory/classes/metadata/mspan/inuse:bytes + "
        "/memory/classes/metadata/mspan/free:bytes.",
    ),
    _g(
        "MCacheInuse",
        "mcache_inuse_bytes",
        "Number of bytes in use by mcache structures. Equals to "
        "/memory/classes/metadata/mcache/inuse:bytes.",
    ),
    _g(
        "MCacheSys",
        "mcache_sys_bytes",
        "Number of bytes used for mcache structures obtained from system. "
        "Equals to /memory/classes/metadata/mcache/inuse:bytes + "
        "/memory/classes/metadata/mcache/free:bytes.",
    ),
    _g(
        "BuckHashSys",
        "buck_hash_sys_bytes",
        "Number of bytes used by the profiling bucket hash table. Equals to "
        "/memory/classes/profiling/buckets:bytes.",
    ),
    _g(
        "GCSys",
        "gc_sys_bytes",
        "Number of bytes used for garbage collection system metadata. Equals to"
        " /memory/classes/metadata/other:bytes.",
    ),
    _g(
        "OtherSys",
        "other_sys_bytes",
        "Number of bytes used for other system allocations. Equals to /memory/classes/other:bytes.",
    ),
    _g(
        "NextGC",
        "next_gc_bytes",
        "Number of heap bytes when next garbage collection will take place. "
        "Equals to /gc/heap/goal:bytes.",
    ),
    # client_golang has no metric for these three; their names follow its runtime/metrics
    # scheme (forced cycles) or its go_memstats_ prefix, in snake_case, so that
    # `promtool check metrics` has nothing to say about them.
    MemstatsField(
        "NumForcedGC",
        "go_gc_cycles_forced_gc_cycles_total",
        "counter",
        "Count of completed GC cycles forced by the application. Equals to "
        "/gc/cycles/forced:gc-cycles.",
    ),
    _g("EnableGC", "enable_gc", "1 while the garbage collector is enabled (GOGC is not off)."),
    _g("DebugGC", "debug_gc", "Always 0 in Go: the field is unused (runtime.MemStats.DebugGC)."),
    MemstatsField(
        "LastGC",
        "go_memstats_last_gc_time_seconds",
        "gauge",
        "Number of seconds since 1970 of last garbage collection.",
        ns_to_seconds=True,
    ),
    _g(
        "GCCPUFraction",
        "gc_cpu_fraction",
        "The fraction of this program's available CPU time used by the GC since"
        " the program started.",
    ),
)
"""Fields client_golang exports, in client_golang's order."""

GC_SUMMARY = "go_gc_duration_seconds"
_LAST_PAUSE = "go_memstats_last_gc_pause_seconds"

DERIVED: dict[str, MetricMeta] = {
    GC_SUMMARY: MetricMeta(
        "summary",
        "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.",
    ),
    "go_gc_cycles_total": MetricMeta(
        "counter", "Number of completed garbage collection cycles, from MemStats.NumGC."
    ),
    _LAST_PAUSE: MetricMeta(
        "gauge",
        "Stop-the-world pause of the most recent garbage collection, "
        "from the MemStats.PauseNs ring.",
    ),
}
"""Metrics computed from several fields (``NumGC``, ``PauseNs``, ``PauseTotalNs``)."""

_QUANTILES = ("0", "0.25", "0.5", "0.75", "1")


def go_seconds(ns: int) -> float:
    """Nanoseconds to seconds exactly as Go's ``time.Duration.Seconds`` rounds them."""
    sec, nsec = divmod(ns, 1_000_000_000)
    return float(sec) + float(nsec) / 1e9


def _recent(num_gc: int, ring: Sequence[int]) -> list[int]:
    """The pauses ``debug.ReadGCStats`` returns, newest first: the last ``min(NumGC, len)``
    slots of the ring, the newest at ``PauseNs[(NumGC+len-1) % len]``."""
    n = min(num_gc, len(ring))
    return [ring[(num_gc - 1 - i) % len(ring)] for i in range(n)]


def _quantiles(pauses: Sequence[int]) -> list[float]:
    """Min, 25%, 50%, 75% and max of sorted ``pauses`` in seconds, picked as
    ``debug.ReadGCStats`` picks them; all zeros before the first collection."""
    if not pauses:
        return [0.0] * len(_QUANTILES)
    nq = len(_QUANTILES) - 1
    picked = [pauses[len(pauses) * i // nq] for i in range(nq)] + [pauses[-1]]
    return [go_seconds(ns) for ns in picked]


META: dict[str, MetricMeta] = {f.name: f.meta for f in FIELDS} | DERIVED
"""Every family this module produces, by the name ``Snapshot.meta`` keys it under."""

USED = frozenset({f.field for f in FIELDS} | {"NumGC", "PauseNs", "PauseTotalNs"})
"""Fields consumed here; any other field a newer Go adds is flattened as any expvar."""

Sample = tuple[str, LabelSet, float]
"""(family, the sample's label set with ``__name__``, value)."""

# Pauses are durations: a negative one is not Go's ring (checked while decoding).
_PAUSES = msgspec.json.Decoder(list[Annotated[int, msgspec.Meta(ge=0)]])
# PauseNs is 256 numbers of at most 20 digits; anything much larger is not Go's ring.
_MAX_RING_BYTES = 64 * 1024


def _named(name: str) -> LabelSet:
    return (("__name__", name),)


# Every label set this module produces, built once: a scrape of the same memstats
# yields the same series, and building (and sorting) 36 tuples per scrape showed.
_FIELD_SERIES = tuple((f.field, f.name, _named(f.name), f.ns_to_seconds) for f in FIELDS)
_CYCLES = _named("go_gc_cycles_total")
_LAST_PAUSE_SERIES = _named(_LAST_PAUSE)
_QUANTILE_SERIES = tuple((("__name__", GC_SUMMARY), ("quantile", q)) for q in _QUANTILES)
_SUM_SERIES = _named(GC_SUMMARY + "_sum")
_COUNT_SERIES = _named(GC_SUMMARY + "_count")


def samples(fields: Mapping[str, msgspec.Raw]) -> tuple[list[Sample], str]:
    """The samples of one ``memstats`` object, and a warning when the GC fields are not Go's."""
    out: list[Sample] = []
    for field_, name, series, ns_to_seconds in _FIELD_SERIES:
        raw = fields.get(field_)
        value = None if raw is None else number(raw)
        if value is not None:
            out.append((name, series, value / 1e9 if ns_to_seconds else value))
    num_gc = uint(fields.get("NumGC"))
    if num_gc is None:
        return out, ""
    out.append(("go_gc_cycles_total", _CYCLES, float(num_gc)))
    total = uint(fields.get("PauseTotalNs"))
    ring = _ring(fields.get("PauseNs"))
    if ring is None or total is None:
        return out, "memstats: PauseNs or PauseTotalNs missing or not Go's: GC pauses not exported"
    recent = _recent(num_gc, ring)
    if recent:
        out.append((_LAST_PAUSE, _LAST_PAUSE_SERIES, go_seconds(recent[0])))
    for series, seconds in zip(_QUANTILE_SERIES, _quantiles(sorted(recent)), strict=True):
        out.append((GC_SUMMARY, series, seconds))
    out.append((GC_SUMMARY, _SUM_SERIES, go_seconds(total)))
    out.append((GC_SUMMARY, _COUNT_SERIES, float(num_gc)))
    return out, ""


def _ring(raw: msgspec.Raw | None) -> list[int] | None:
    if raw is None or first_byte(raw) != LBRACKET or len(raw) > _MAX_RING_BYTES:
        return None
    try:
        ring = _PAUSES.decode(raw)
    except BAD_JSON:
        return None
    return ring or None
