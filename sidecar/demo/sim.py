"""The demo target's state: a Go order service's caches, pool and garbage collector, simulated.

The demo app (``sidecar.demo.app``) serves this state as Go's expvar would. Nothing runs
in the background: every quantity is a closed-form function of time between two control
events (a leak switched, a flush, a break, a reset), and garbage collections are solved
for when the state is read. Time comes from an injected monotonic ``clock`` so that tests
step it; wall-clock values (``LastGC``, ``PauseEnd``) are derived from one reading of
``wall`` at construction, so they are deterministic too. How Go accounts for the heap in
``runtime.MemStats`` is ``sidecar.demo.memstats``.

The model, in the units Go reports:

- live heap = base + leaked heap + cache keys x bytes per key; garbage accrues at the
  request churn rate; a GC runs when live + garbage reaches ``NextGC``
  (= max(4 MiB, 2 x live), GOGC=100), or 2 minutes after the last GC (the runtime's
  forced periodic GC), drops the garbage and records a pause;
- caches refill towards their healthy size after a flush; the leak adds keys without bound;
- the pool holds a healthy number of connections plus leaked ones (up to its max); an
  open circuit stops traffic, so nothing grows and the pool drains.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from sidecar.core.validation import Model
from sidecar.demo.memstats import GCState, memstats

__all__ = ["CACHES", "POOL_MAX", "LeakSettings", "Simulation"]

_MIB = 1024 * 1024
_HEAP_MINIMUM = 4 * _MIB  # Go's heapminimum at GOGC=100
_BASE_LIVE = 24 * _MIB
_BYTES_PER_KEY = 512  # a map[string]interface{} entry with a small struct behind it
_CHURN_CLOSED = 2 * _MIB  # bytes/s of short-lived garbage while serving
_CHURN_OPEN = _MIB // 4  # the runtime and health checks still allocate
_BASE_GOROUTINES = 9
_REFILL_PER_SECOND = 50.0
_POOL_HEALTHY = 12
_POOL_DRAIN_PER_SECOND = 10.0
_MAX_GCS_PER_READ = 10_000  # a clock jump of days is compressed, not replayed
_FORCED_GC_PERIOD = 120.0  # Go's forcegcperiod: a GC at least every 2 minutes

#: Cache name -> (healthy key count, share of leaked keys).
CACHES: dict[str, tuple[int, float]] = {"orders": (1200, 0.8), "sessions": (300, 0.2)}
#: Route -> requests per second while the circuit is closed.
_ROUTES: dict[str, float] = {"orders": 40.0, "sessions": 10.0}
POOL_MAX = 100


# frozen=True again: Model is frozen, but mypy's view of msgspec wants each subclass to say so.
class LeakSettings(Model, frozen=True):
    """Whether the leak runs and how fast; the defaults trip the shipped rules in minutes.

    ``LeakSettings.validate`` checks a body; the constructor is for code that already
    holds checked numbers.
    """

    on: bool = False
    keys_per_second: Annotated[
        float,
        msgspec.Meta(
            ge=0, le=1e6, description="Above the seed's rate(cache_keys_total[10m]) > 500."
        ),
    ] = 600.0
    heap_bytes_per_second: Annotated[
        float,
        msgspec.Meta(ge=0, le=1e9, description="Raises the heap floor after each GC visibly."),
    ] = float(_MIB)
    pool_per_second: Annotated[
        float,
        msgspec.Meta(ge=0, le=1e4, description="Fills the pool to 95% in about three minutes."),
    ] = 0.5


def _floor(x: float) -> int:
    # Sums of float segments land a hair below whole numbers; they mean the whole number.
    return math.floor(x + 1e-6)


@dataclass
class _Anchor:
    """The linear quantities at the last control event ``t``."""

    t: float
    leaked_heap: float
    keys: dict[str, float]
    leaked_conns: float
    requests: dict[str, dict[str, float]]
    total_alloc: float


class Simulation:
    """The service's state as a function of time; read it with ``expvar()``."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        leak: LeakSettings | None = None,
    ) -> None:
        self._clock = clock
        self._mono0 = clock()
        self._wall0_ns = int(wall() * 1e9)
        self.leak = leak if leak is not None else LeakSettings()
        self.circuit_open = False
        self.circuit_since = self._mono0
        self._a = _Anchor(
            t=self._mono0,
            leaked_heap=0.0,
            keys={name: float(healthy) for name, (healthy, _) in CACHES.items()},
            leaked_conns=0.0,
            requests={route: {"200": 0.0, "503": 0.0} for route in _ROUTES},
            total_alloc=0.0,
        )
        live = self._live(self._mono0)
        self._a.total_alloc = live
        self._gc = GCState(
            since=self._mono0,
            garbage=0.0,
            next_gc=max(_HEAP_MINIMUM, 2 * live),
            last_t=self._mono0,
        )
        self._gc.heap_peak = live

    # -- closed forms between control events -------------------------------------------

    def _keys(self, t: float) -> dict[str, float]:
        dt = t - self._a.t
        out = {}
        for name, (healthy, share) in CACHES.items():
            k0 = self._a.keys[name]
            if self.circuit_open:
                out[name] = k0
            elif self.leak.on:
                out[name] = k0 + self.leak.keys_per_second * share * dt
            elif k0 < healthy:
                out[name] = min(float(healthy), k0 + _REFILL_PER_SECOND * dt)
            else:
                out[name] = k0
        return out

    def _leaked_heap(self, t: float) -> float:
        rate = self.leak.heap_bytes_per_second if self.leak.on and not self.circuit_open else 0.0
        return self._a.leaked_heap + rate * (t - self._a.t)

    def _leaked_conns(self, t: float) -> float:
        dt = t - self._a.t
        if self.circuit_open:
            return max(0.0, self._a.leaked_conns - _POOL_DRAIN_PER_SECOND * dt)
        rate = self.leak.pool_per_second if self.leak.on else 0.0
        return min(float(POOL_MAX - _POOL_HEALTHY), self._a.leaked_conns + rate * dt)

    def _live(self, t: float) -> float:
        return _BASE_LIVE + self._leaked_heap(t) + sum(self._keys(t).values()) * _BYTES_PER_KEY

    def _churn(self) -> float:
        return float(_CHURN_OPEN if self.circuit_open else _CHURN_CLOSED)

    def _garbage(self, t: float) -> float:
        return self._gc.garbage + self._churn() * (t - self._gc.since)

    def _heap(self, t: float) -> float:
        return self._live(t) + self._garbage(t)

    def _requests(self, t: float) -> dict[str, dict[str, float]]:
        dt = t - self._a.t
        code = "503" if self.circuit_open else "200"
        return {
            route: {
                c: n + (rps * dt if c == code else 0.0) for c, n in self._a.requests[route].items()
            }
            for route, rps in _ROUTES.items()
        }

    # -- garbage collection -----------------------------------------------------------

    def _next_gc_time(self) -> float:
        """The next GC: the heap's or the runtime's periodic one, whichever comes first."""
        forced = max(self._gc.since, self._gc.last_t + _FORCED_GC_PERIOD)
        return min(self._heap_gc_time(), forced)

    def _heap_gc_time(self) -> float:
        """When live + garbage reaches NextGC, solved on the piecewise-linear heap."""
        since = self._gc.since
        need = self._gc.next_gc - self._heap(since)
        if need <= 0:
            return since
        churn = self._churn()
        if self.circuit_open:
            return since + need / churn
        if self.leak.on:
            grow = self.leak.heap_bytes_per_second + self.leak.keys_per_second * _BYTES_PER_KEY
            return since + need / (churn + grow)
        # Refilling caches: each stops growing when it reaches its healthy size.
        deficits = sorted(
            (healthy - k) / _REFILL_PER_SECOND
            for (healthy, _), k in zip(CACHES.values(), self._keys(since).values(), strict=True)
            if k < healthy
        )
        t = 0.0
        for i, end in enumerate(deficits):
            rate = churn + (len(deficits) - i) * _REFILL_PER_SECOND * _BYTES_PER_KEY
            if need <= rate * (end - t):
                return since + t + need / rate
            need -= rate * (end - t)
            t = end
        return since + t + need / churn

    def _collect(self, t: float, *, forced: bool = False) -> None:
        gc = self._gc
        live = self._live(t)
        gc.heap_peak = max(gc.heap_peak, self._heap(t))
        pause = 40_000 + round(live) // 1024  # ns: grows with the heap the GC must scan
        end_ns = self._wall_ns(t)
        gc.num_gc += 1
        gc.num_forced += forced
        gc.pause_total_ns += pause
        gc.gc_cpu_ns += pause + live / 2  # mark work: about 0.5 ns of CPU per live byte
        gc.pause_ns[(gc.num_gc + 255) % 256] = pause
        gc.pause_end[(gc.num_gc + 255) % 256] = end_ns
        gc.last_gc_ns = end_ns
        gc.last_t = t
        gc.since = t
        gc.garbage = 0.0
        gc.next_gc = max(_HEAP_MINIMUM, 2 * live)

    def _wall_ns(self, t: float) -> int:
        return self._wall0_ns + int((t - self._mono0) * 1e9)

    def _advance(self, now: float) -> None:
        for _ in range(_MAX_GCS_PER_READ):
            t = self._next_gc_time()
            if t > now:
                return
            self._collect(t)
        self._gc.since, self._gc.garbage = now, 0.0

    def _rebase(self, now: float) -> None:
        """Run GCs up to ``now`` and restart every closed form from its value at ``now``."""
        self._advance(now)
        self._gc.garbage, self._gc.since = self._garbage(now), now
        total = self._total_alloc(now)
        self._a = _Anchor(
            t=now,
            leaked_heap=self._leaked_heap(now),
            keys=self._keys(now),
            leaked_conns=self._leaked_conns(now),
            requests=self._requests(now),
            total_alloc=total,
        )

    def _total_alloc(self, t: float) -> float:
        # Everything ever allocated: the live growth since the anchor plus all churn.
        churned = self._churn() * (t - self._a.t)
        return self._a.total_alloc + churned + max(0.0, self._live(t) - self._live(self._a.t))

    # -- control events ---------------------------------------------------------------

    def set_leak(self, leak: LeakSettings) -> None:
        """Switch the leak; what happened so far keeps the old settings."""
        self._rebase(self._clock())
        self.leak = leak

    def flush(self) -> dict[str, int]:
        """Empty every cache and collect at once, as a flush handler calling runtime.GC would.

        Returns the key counts that were dropped.
        """
        now = self._clock()
        self._rebase(now)
        dropped = {name: _floor(k) for name, k in self._a.keys.items()}
        self._a.keys = dict.fromkeys(self._a.keys, 0.0)
        self._collect(now, forced=True)
        return dropped

    def break_circuit(self) -> bool:
        """Open the circuit; returns whether it was closed before."""
        return self._set_circuit(open_=True)

    def reset_circuit(self) -> bool:
        """Close the circuit; returns whether it was open before."""
        return self._set_circuit(open_=False)

    def _set_circuit(self, *, open_: bool) -> bool:
        now = self._clock()
        self._rebase(now)
        changed = self.circuit_open != open_
        if changed:
            self.circuit_open = open_
            self.circuit_since = now
        return changed

    def circuit(self) -> dict[str, Any]:
        """The circuit's state and since when (wall-clock seconds)."""
        return {
            "state": "open" if self.circuit_open else "closed",
            "since": self._wall_ns(self.circuit_since) / 1e9,
        }

    # -- the expvar view --------------------------------------------------------------

    def expvar(self, cmdline: list[str]) -> dict[str, Any]:
        """The /debug/vars document at the clock's current reading, keys sorted as Go does."""
        now = self._clock()
        self._advance(now)
        keys = {name: _floor(k) for name, k in self._keys(now).items()}
        in_use = 0 if self.circuit_open else _POOL_HEALTHY
        active = min(POOL_MAX, in_use + _floor(self._leaked_conns(now)))
        requests = {
            route: {code: _floor(n) for code, n in codes.items()}
            for route, codes in self._requests(now).items()
        }
        # Written in sorted order, as expvar.Do walks its vars.
        return {
            "cache_keys_total": sum(keys.values()),
            "caches": keys,
            "circuit_open": int(self.circuit_open),
            "cmdline": list(cmdline),
            "conn_pool_active": active,
            "conn_pool_max": POOL_MAX,
            "goroutines": _BASE_GOROUTINES + active,
            "http_requests": requests,
            "memstats": memstats(
                self._gc,
                heap=self._heap(now),
                total_alloc=self._total_alloc(now),
                uptime=now - self._mono0,
                goroutines=_BASE_GOROUTINES + active,
            ),
        }
