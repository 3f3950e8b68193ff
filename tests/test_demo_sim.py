"""The demo service's simulated state: Go's expvar shape, the GC sawtooth, the leak."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.demo.sim import LeakSettings, Simulation

GO_VARS = Path(__file__).parent / "fixtures" / "goapp" / "vars.json"
WALL = 1_800_000_000.0
WALL_NS = 1_800_000_000_000_000_000
MIB = 1024 * 1024
LIVE = 24 * MIB + 1500 * 512  # base heap + healthy caches at 512 bytes a key


class Clock:
    """A monotonic clock the test steps by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def step(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> Clock:
    """A fresh stepped clock."""
    return Clock()


def make(clock: Clock, **leak: Any) -> Simulation:
    return Simulation(clock=clock, wall=lambda: WALL, leak=LeakSettings(**leak))


def mem(sim: Simulation) -> dict[str, Any]:
    ms: dict[str, Any] = sim.expvar(["order-service"])["memstats"]
    return ms


def test_memstats_has_go_runtime_memstats_fields_in_go_order() -> None:
    """memstats carries exactly the fields of a real Go program's, in the same order."""
    go = orjson.loads(GO_VARS.read_bytes())["memstats"]
    ours = mem(make(Clock()))
    assert list(ours) == list(go)
    assert {k: type(v) for k, v in ours.items()} == {k: type(v) for k, v in go.items()}
    assert len(ours["PauseNs"]) == len(ours["PauseEnd"]) == 256
    assert [e["Size"] for e in ours["BySize"]] == [e["Size"] for e in go["BySize"]]
    assert all(list(e) == ["Size", "Mallocs", "Frees"] for e in ours["BySize"])


def test_top_level_vars_are_the_documented_set_sorted_like_expvar() -> None:
    """The document's keys are cmdline, memstats and the app vars, sorted as expvar.Do does."""
    doc = make(Clock()).expvar(["order-service", "-listen", ":8080"])
    assert list(doc) == [
        "cache_keys_total",
        "caches",
        "circuit_open",
        "cmdline",
        "conn_pool_active",
        "conn_pool_max",
        "goroutines",
        "http_requests",
        "memstats",
    ]
    assert doc["cmdline"] == ["order-service", "-listen", ":8080"]


def test_a_fresh_service_reports_its_healthy_baseline() -> None:
    """At start the caches, pool and heap hold their healthy values and no GC has run."""
    doc = make(Clock()).expvar(["x"])
    assert doc["cache_keys_total"] == 1500
    assert doc["caches"] == {"orders": 1200, "sessions": 300}
    assert (doc["conn_pool_active"], doc["conn_pool_max"], doc["goroutines"]) == (12, 100, 21)
    assert doc["circuit_open"] == 0
    assert doc["http_requests"] == {
        "orders": {"200": 0, "503": 0},
        "sessions": {"200": 0, "503": 0},
    }
    ms = doc["memstats"]
    assert (ms["HeapAlloc"], ms["Alloc"], ms["NextGC"]) == (LIVE, LIVE, 2 * LIVE)
    assert (ms["NumGC"], ms["LastGC"], ms["PauseTotalNs"]) == (0, 0, 0)


def test_first_gc_drops_the_heap_and_records_pause_and_time(clock: Clock) -> None:
    """Garbage grows at 2 MiB/s until NextGC; the GC then drops it and records itself."""
    sim = make(clock)
    clock.step(12)
    assert mem(sim)["HeapAlloc"] == LIVE + 12 * 2 * MIB
    assert mem(sim)["NumGC"] == 0
    clock.step(1)  # the GC ran at 12.3662109375 s, when the heap reached 2 x live
    ms = mem(sim)
    pause = 40_000 + LIVE // 1024
    assert ms["NumGC"] == 1
    assert ms["HeapAlloc"] == 26 * MIB  # live + 2 MiB/s x (13 - 12.3662109375) s
    assert ms["LastGC"] == WALL_NS + 12_366_210_937
    assert ms["PauseNs"][0] == pause
    assert ms["PauseEnd"][0] == ms["LastGC"]
    assert ms["PauseTotalNs"] == pause
    assert ms["NextGC"] == 2 * LIVE


def test_without_leak_the_sawtooth_is_stable(clock: Clock) -> None:
    """Leak off: every GC brings the heap back to the same floor and the same goal."""
    sim = make(clock)
    goals, heaps, gcs = set(), [], []
    for _ in range(300):
        clock.step(1)
        ms = mem(sim)
        goals.add(ms["NextGC"])
        heaps.append(ms["HeapAlloc"])
        gcs.append(ms["NumGC"])
    assert goals == {2 * LIVE}
    assert gcs[-1] == 24  # one GC per 12.37 s
    for i in range(1, len(heaps)):
        assert gcs[i] - gcs[i - 1] in (0, 1)
        if gcs[i] == gcs[i - 1]:
            assert heaps[i] - heaps[i - 1] == 2 * MIB  # only churn grows
        else:
            assert heaps[i] < heaps[i - 1]
    doc = sim.expvar(["x"])
    assert (doc["cache_keys_total"], doc["conn_pool_active"]) == (1500, 12)


def test_leak_grows_keys_pool_and_heap_floor(clock: Clock) -> None:
    """Leak on: keys grow at their rate, the pool fills to its max, each GC's goal rises."""
    sim = make(clock)
    sim.set_leak(LeakSettings(on=True, keys_per_second=600, pool_per_second=0.5))
    goals = []
    for _ in range(60):
        clock.step(1)
        goals.append(mem(sim)["NextGC"])
    doc = sim.expvar(["x"])
    assert doc["cache_keys_total"] == 1500 + 600 * 60
    assert doc["caches"] == {"orders": 1200 + 480 * 60, "sessions": 300 + 120 * 60}
    assert (doc["conn_pool_active"], doc["goroutines"]) == (42, 51)
    distinct = sorted(set(goals))
    assert goals == sorted(goals)
    assert len(distinct) == doc["memstats"]["NumGC"] + 1  # a new, higher goal at every GC
    clock.step(540)
    doc = sim.expvar(["x"])
    assert doc["cache_keys_total"] == 1500 + 600 * 600
    assert doc["conn_pool_active"] == 100  # saturated at conn_pool_max


def test_leak_switched_off_keeps_what_leaked(clock: Clock) -> None:
    """Leaked keys and connections stay when the leak stops; nothing grows any more."""
    sim = make(clock)
    sim.set_leak(LeakSettings(on=True, keys_per_second=100, pool_per_second=1))
    clock.step(10)
    sim.set_leak(LeakSettings(on=False))
    clock.step(100)
    doc = sim.expvar(["x"])
    assert (doc["cache_keys_total"], doc["conn_pool_active"]) == (2500, 22)


def test_flush_empties_caches_and_collects_at_once(clock: Clock) -> None:
    """A flush drops every key, forces a GC and the heap falls to the base; caches refill."""
    sim = make(clock)
    clock.step(5)
    assert mem(sim)["HeapAlloc"] == LIVE + 10 * MIB
    assert sim.flush() == {"orders": 1200, "sessions": 300}
    doc = sim.expvar(["x"])
    ms = doc["memstats"]
    assert (doc["cache_keys_total"], doc["caches"]) == (0, {"orders": 0, "sessions": 0})
    assert (ms["HeapAlloc"], ms["NextGC"]) == (24 * MIB, 48 * MIB)
    assert (ms["NumGC"], ms["NumForcedGC"], ms["LastGC"]) == (1, 1, WALL_NS + 5_000_000_000)
    clock.step(10)  # refill at 50 keys/s per cache up to its healthy size
    assert sim.expvar(["x"])["caches"] == {"orders": 500, "sessions": 300}
    clock.step(100)
    assert sim.expvar(["x"])["cache_keys_total"] == 1500


def test_break_drains_pool_and_stops_growth_reset_resumes(clock: Clock) -> None:
    """An open circuit stops traffic: no key growth, the pool drains; reset brings both back."""
    sim = make(clock)
    sim.set_leak(LeakSettings(on=True, keys_per_second=100, pool_per_second=1))
    clock.step(30)
    assert sim.break_circuit() is True
    assert sim.break_circuit() is False
    assert sim.circuit() == {"state": "open", "since": WALL + 30}
    clock.step(1)
    doc = sim.expvar(["x"])
    assert (doc["circuit_open"], doc["conn_pool_active"], doc["cache_keys_total"]) == (1, 20, 4500)
    clock.step(9)
    assert sim.expvar(["x"])["conn_pool_active"] == 0
    assert sim.reset_circuit() is True
    assert sim.circuit() == {"state": "closed", "since": WALL + 40}
    clock.step(10)
    doc = sim.expvar(["x"])
    assert (doc["circuit_open"], doc["conn_pool_active"], doc["cache_keys_total"]) == (0, 22, 5500)
    assert doc["http_requests"] == {
        "orders": {"200": 40 * 40, "503": 40 * 10},
        "sessions": {"200": 10 * 40, "503": 10 * 10},
    }


def test_a_gc_runs_at_least_every_two_minutes(clock: Clock) -> None:
    """A big live heap behind an open circuit grows its garbage too slowly to reach NextGC,
    yet Go's periodic GC runs every 2 minutes (not counted as forced by the app)."""
    sim = make(clock, on=True, keys_per_second=0, heap_bytes_per_second=100 * MIB)
    clock.step(10)
    sim.break_circuit()  # live is now about 1 GiB: NextGC is hours of garbage away
    before = mem(sim)["NumGC"]
    clock.step(600)
    ms = mem(sim)
    assert ms["NumGC"] - before == 5
    assert ms["NumForcedGC"] == 0
    ends = [ms["PauseEnd"][(n + 255) % 256] for n in range(ms["NumGC"] - 4, ms["NumGC"] + 1)]
    assert [b - a for a, b in itertools.pairwise(ends)] == [120_000_000_000] * 4


def test_pause_ring_wraps_at_256(clock: Clock) -> None:
    """After 300 GCs the latest pause sits at (NumGC+255)%256 and every slot is filled."""
    sim = make(clock)
    clock.step(12.3662109375 * 300 + 1)
    ms = mem(sim)
    assert ms["NumGC"] == 300
    last = (300 + 255) % 256
    assert ms["PauseEnd"][last] == ms["LastGC"]
    assert max(ms["PauseEnd"]) == ms["LastGC"]
    assert all(ms["PauseNs"])


def test_a_huge_clock_jump_is_compressed_not_replayed(clock: Clock) -> None:
    """Ten years between two reads cost at most 10000 simulated GCs and little time."""
    sim = make(clock)
    clock.step(10 * 365 * 86400)
    started = time.monotonic()
    ms = mem(sim)
    assert time.monotonic() - started < 10
    assert (ms["NumGC"], ms["HeapAlloc"]) == (10_000, LIVE)


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("step"), st.floats(0, 120)),
        st.tuples(st.just("leak"), st.booleans()),
        st.tuples(st.sampled_from(["flush", "break", "reset"]), st.none()),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS)
def test_memstats_stay_self_consistent(ops: list[tuple[str, Any]]) -> None:
    """Whatever happens, the numbers keep the relations Go's runtime guarantees."""
    clock = Clock()
    sim = make(clock, keys_per_second=5000, heap_bytes_per_second=4 * MIB, pool_per_second=3)
    total = 0
    for op, arg in ops:
        if op == "step":
            clock.step(arg)
        elif op == "leak":
            sim.set_leak(msgspec.structs.replace(sim.leak, on=arg))
        else:
            {"flush": sim.flush, "break": sim.break_circuit, "reset": sim.reset_circuit}[op]()
        doc = sim.expvar(["x"])
        ms = doc["memstats"]
        assert ms["Alloc"] == ms["HeapAlloc"] <= ms["HeapInuse"] <= ms["HeapSys"]
        assert ms["HeapIdle"] + ms["HeapInuse"] == ms["HeapSys"]
        assert 0 <= ms["HeapReleased"] <= ms["HeapIdle"]
        assert ms["Sys"] == sum(v for k, v in ms.items() if k.endswith("Sys") and k != "Sys")
        assert ms["Mallocs"] - ms["Frees"] == ms["HeapObjects"]
        assert total <= ms["TotalAlloc"]
        assert ms["HeapAlloc"] <= ms["TotalAlloc"]
        total = ms["TotalAlloc"]
        assert ms["MSpanInuse"] <= ms["MSpanSys"]
        assert ms["StackInuse"] <= ms["StackSys"]
        assert sum(e["Mallocs"] for e in ms["BySize"]) <= ms["Mallocs"]
        assert all(e["Frees"] <= e["Mallocs"] for e in ms["BySize"])
        assert ms["NumForcedGC"] <= ms["NumGC"]
        assert 0 <= ms["GCCPUFraction"] <= 1
        if 0 < ms["NumGC"] <= 256:
            assert ms["PauseTotalNs"] == sum(ms["PauseNs"])
            assert ms["PauseEnd"][(ms["NumGC"] + 255) % 256] == ms["LastGC"]
        assert doc["cache_keys_total"] == sum(doc["caches"].values())
        assert 0 <= doc["conn_pool_active"] <= doc["conn_pool_max"]
        assert doc["goroutines"] == 9 + doc["conn_pool_active"]
