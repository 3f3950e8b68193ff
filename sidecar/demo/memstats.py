"""Go's ``runtime.MemStats`` for the demo app's simulated heap: the ``memstats`` expvar.

``sidecar.demo.sim`` runs the model (live heap, garbage, when the collector runs); this
module owns how Go accounts for such a heap: pages and spans, stacks, the ``*Sys``
fields and their sum, malloc and free counts and their split over Go's size classes
(``BySize``), the pause ring buffers, ``GCCPUFraction``. The fields keep Go's relations
(``Alloc == HeapAlloc``, ``HeapIdle + HeapInuse == HeapSys``, ``Sys`` the sum of the
``*Sys`` fields, ``Mallocs - Frees == HeapObjects``), so the sidecar's ``go_memstats_*``
export sees what it would see from a real Go service.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GCState", "memstats"]

_MIB = 1024 * 1024
_PAGE = 8192
_AVG_OBJECT = 96
_GOMAXPROCS = 2

# Go's first 61 size classes (runtime/sizeclasses.go): MemStats.BySize has 61 entries.
_SIZE_CLASSES = (
    0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
    288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280,
    1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528,
    6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432,
)  # fmt: skip
# Small objects dominate real programs; classes above 8 KiB get no share, as in real dumps.
_WEIGHTS = tuple(8192 // s if s else 0 for s in _SIZE_CLASSES)


@dataclass
class GCState:
    """Collector state: garbage since ``since`` (a GC or control event) and the history.

    The simulation runs the collector; ``memstats`` reports its history.
    """

    since: float
    garbage: float
    next_gc: float
    last_t: float
    num_gc: int = 0
    num_forced: int = 0
    pause_total_ns: int = 0
    gc_cpu_ns: float = 0.0
    last_gc_ns: int = 0
    heap_peak: float = 0.0
    pause_ns: list[int] = field(default_factory=lambda: [0] * 256)
    pause_end: list[int] = field(default_factory=lambda: [0] * 256)


def _roundup(x: float, unit: int) -> int:
    return math.ceil(x / unit) * unit


def memstats(
    gc: GCState, *, heap: float, total_alloc: float, uptime: float, goroutines: int
) -> dict[str, Any]:
    """The ``memstats`` var: ``heap`` (live + garbage, bytes) and ``total_alloc`` now,
    ``uptime`` seconds since the process started, ``goroutines`` running, and ``gc``'s
    history, in ``runtime.MemStats``'s field order."""
    heap_alloc = round(heap)
    peak = max(gc.heap_peak, heap_alloc)
    heap_inuse = _roundup(heap_alloc * 1.08, _PAGE)  # fragmentation within spans
    peak_inuse = _roundup(peak * 1.08, _PAGE)
    heap_sys = _roundup(peak_inuse + 4 * _MIB, 4 * _MIB)
    heap_idle = heap_sys - heap_inuse
    allocated = round(total_alloc)
    heap_objects = heap_alloc // _AVG_OBJECT
    mallocs = allocated // _AVG_OBJECT
    frees = mallocs - heap_objects
    stack = goroutines * _PAGE + 65536
    mspan_inuse = (heap_inuse // _PAGE // 2 + 32) * 144
    mspan_sys = _roundup((peak_inuse // _PAGE // 2 + 32) * 144, 16384)
    fixed = {"MCacheSys": 15600, "BuckHashSys": 3792, "OtherSys": 1_183_264}
    gc_sys = 2 * _MIB + heap_sys // 16
    sys_total = heap_sys + stack + mspan_sys + gc_sys + sum(fixed.values())
    uptime_ns = max(1.0, uptime * 1e9)
    weight = sum(_WEIGHTS)
    return {
        "Alloc": heap_alloc,
        "TotalAlloc": allocated,
        "Sys": sys_total,
        "Lookups": 0,
        "Mallocs": mallocs,
        "Frees": frees,
        "HeapAlloc": heap_alloc,
        "HeapSys": heap_sys,
        "HeapIdle": heap_idle,
        "HeapInuse": heap_inuse,
        "HeapReleased": heap_idle // 2 // _PAGE * _PAGE,
        "HeapObjects": heap_objects,
        "StackInuse": stack,
        "StackSys": stack,
        "MSpanInuse": mspan_inuse,
        "MSpanSys": mspan_sys,
        "MCacheInuse": 2400,
        "MCacheSys": fixed["MCacheSys"],
        "BuckHashSys": fixed["BuckHashSys"],
        "GCSys": gc_sys,
        "OtherSys": fixed["OtherSys"],
        "NextGC": round(gc.next_gc),
        "LastGC": gc.last_gc_ns,
        "PauseTotalNs": gc.pause_total_ns,
        "PauseNs": list(gc.pause_ns),
        "PauseEnd": list(gc.pause_end),
        "NumGC": gc.num_gc,
        "NumForcedGC": gc.num_forced,
        "GCCPUFraction": min(1.0, gc.gc_cpu_ns / (uptime_ns * _GOMAXPROCS)),
        "EnableGC": True,
        "DebugGC": False,
        "BySize": [
            {"Size": size, "Mallocs": mallocs * w // weight, "Frees": frees * w // weight}
            for size, w in zip(_SIZE_CLASSES, _WEIGHTS, strict=True)
        ],
    }
