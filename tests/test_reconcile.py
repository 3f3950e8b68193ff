"""The reconciler and the breaker's desired state, on an injected clock and sleep."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

import aiohttp
import msgspec
import orjson
import pytest
from actions_support import T0, Clock, View, alert, config, rig, webhook
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from sidecar.actions.action import Action
from sidecar.actions.actuator import Actuator, AppCircuit, GenerationBehind
from sidecar.actions.breaker import MAX_LEVEL, Breaker, CircuitState
from sidecar.actions.history import History
from sidecar.actions.reconcile import Reconciler
from sidecar.core.config_actions import BreakerConfig, ReconcileConfig
from sidecar.core.errors import ActionRejected, ActionUnavailable
from sidecar.core.model import Alert
from sidecar.demo.app import DemoApp

NOW = round(T0 * 1000)
BREAK = Action("b-1", "circuit_break", "alert firing", "rules", (), NOW)
RESET = Action("r-2", "circuit_reset", "resolved", "breaker", (), NOW)


# -- the level cap (finding 5) ------------------------------------------------------


def _breaker() -> Breaker:
    cfg = BreakerConfig.validate({"min_open": "1m", "max_open": "30m", "probation": "10m"})
    return Breaker(cfg, View(), CollectorRegistry(), random=lambda: 1.0)


def test_the_level_is_capped_across_thousands_of_reopens() -> None:
    """Re-opening within probation 3,000 times stops growing at MAX_LEVEL and never overflows."""
    b, s, now = _breaker(), CircuitState(), NOW
    for _ in range(3000):
        s, opened = b.fire(s, _alert(now), now)
        assert opened
        now += 1000
        s = b.reset(s, "resolved", "alert", now)
        now += 1000
    s, _ = b.fire(s, _alert(now), now)
    assert s.level == MAX_LEVEL
    assert s.open_until_ms == now + 1_800_000  # max_open


@pytest.mark.parametrize("level", [10**6, 2**70, -5])
def test_a_journaled_level_out_of_range_is_clamped(level: int) -> None:
    """A huge (or negative) level read back from a journal cannot break the next opening."""
    b = _breaker()
    record = msgspec.structs.replace(CircuitState(last_reset_ms=NOW).to_record(), level=level)
    restored = CircuitState.from_record(record)
    assert 0 <= restored.level <= MAX_LEVEL
    s, opened = b.fire(restored, _alert(NOW + 1), NOW + 1)
    assert opened
    assert s.open_until_ms is not None
    assert s.open_until_ms <= NOW + 1 + 1_800_000


def test_every_call_for_the_app_takes_the_next_generation_and_names_its_call() -> None:
    """``calling`` grows the generation by one; the record keeps generation and call id."""
    s = CircuitState().calling("a-1")
    s = replace(s, state="open").calling("a-2")
    assert (s.generation, s.call_id, s.desired) == (2, "a-2", "open")
    assert CircuitState.from_record(s.to_record()) == s
    assert s.view()["generation"] == 2


def test_desired_state_and_generation_are_gauges() -> None:
    """/metrics shows what the app should be (held is open to the app) and its generation."""
    registry = CollectorRegistry()
    cfg = BreakerConfig.validate({})
    b = Breaker(cfg, View(), registry)
    assert registry.get_sample_value("leak_sidecar_circuit_desired_state") == 0
    b.commit(replace(CircuitState(), state="held").calling("a-1"))
    assert registry.get_sample_value("leak_sidecar_circuit_desired_state") == 1
    assert registry.get_sample_value("leak_sidecar_circuit_generation") == 1


def _alert(now_ms: int) -> Alert:
    """A firing circuit_break alert; each call a new instance, as a re-fire would be."""
    return Alert(
        status="firing",
        labels={"alertname": "PoolSaturated", "action": "circuit_break"},
        annotations={},
        starts_at=dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC),
        ends_at=None,
        generator_url="",
        fingerprint="e4633889fbb03b94",
    )


# -- the reconciler -----------------------------------------------------------------


@dataclass
class FakeApp:
    """An ``Actuator`` stand-in: scripted failures, a record of every call."""

    failures: list[Exception] = field(default_factory=list)
    calls: list[tuple[str, int]] = field(default_factory=list)
    state: AppCircuit = field(default_factory=lambda: AppCircuit("closed", 0))
    dry_run: bool = False
    observes: bool = True
    gate: asyncio.Event | None = None
    """When set, each call waits for it: a call in flight."""

    async def call(self, action: Action, generation: int) -> None:
        self.calls.append((action.id, generation))
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)
        self.state = AppCircuit("open" if action.kind == "circuit_break" else "closed", generation)

    async def observe(self) -> AppCircuit:
        return self.state

    async def run(self, action: Action) -> str:
        return "dry_run"


@dataclass
class Parked:
    """An injected sleep that records and never returns by itself: only a wake ends it."""

    waits: list[float] = field(default_factory=list)
    instant: bool = True

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.instant:
            await asyncio.sleep(0)
        else:
            await asyncio.Event().wait()


@dataclass
class Harness:
    reconciler: Reconciler
    app: FakeApp
    sleeps: Parked
    done: list[tuple[str, str]]
    registry: CollectorRegistry
    behind: list[tuple[str, int]]
    """Every ``on_behind`` call: the action and the generation the app applied."""

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    async def settle(self) -> None:
        task = self.reconciler.task
        if task is not None:
            async with asyncio.timeout(5):
                await task


@pytest.fixture
def h() -> Harness:
    app, sleeps, done, behind = FakeApp(), Parked(), [], []
    registry = CollectorRegistry()

    async def on_done(action: Action, outcome: str) -> None:
        done.append((action.id, outcome))

    async def on_behind(action: Action, applied: int) -> int | None:
        # The owner journals the call at the next generation after the app's; a call
        # that is no longer the circuit's ("gone") gets None.
        behind.append((action.id, applied))
        return None if action.id == "gone" else applied + 1

    cfg = ReconcileConfig.validate({"initial_backoff": "500ms", "max_backoff": "4s"})
    reconciler = Reconciler(
        cfg,
        cast(Actuator, app),
        registry,
        history=History(),
        on_done=on_done,
        on_behind=on_behind,
        clock=Clock(),
        sleep=sleeps,
    )
    return Harness(reconciler, app, sleeps, done, registry, behind)


async def test_a_failing_call_is_resent_forever_with_capped_backoff_until_confirmed(
    h: Harness,
) -> None:
    """Refused, 5xx and 4xx alike: the same key and generation again, waits capped, counted."""
    h.app.failures = [ActionUnavailable("circuit_break", "u", "refused")] * 8 + [
        ActionRejected("circuit_break", "u", "400", 400)
    ] * 2
    h.reconciler.want(BREAK, 1)
    assert not h.reconciler.in_sync
    await h.settle()
    assert h.app.calls == [("b-1", 1)] * 11
    assert len(h.sleeps.waits) == 10
    assert all(0 <= w <= 4.0 for w in h.sleeps.waits)
    assert h.done == [("b-1", "success")]
    assert h.reconciler.in_sync
    assert h.reconciler.observed is not None
    assert (h.reconciler.observed.state, h.reconciler.observed.generation) == ("open", 1)
    assert h.metric("leak_sidecar_reconcile_total", outcome="unavailable") == 8
    assert h.metric("leak_sidecar_reconcile_total", outcome="rejected") == 2
    assert h.metric("leak_sidecar_reconcile_total", outcome="confirmed") == 1
    assert h.metric("leak_sidecar_circuit_observed_state") == 1
    assert h.reconciler.view()["last_reconcile"]["attempts"] == 11


async def test_a_decision_during_a_call_waits_for_it_and_supersedes_it(h: Harness) -> None:
    """One call in flight: the reset is sent after the break returns; the break never again."""
    h.app.gate = asyncio.Event()
    h.app.failures = [ActionUnavailable("circuit_break", "u", "timed out")]
    h.reconciler.want(BREAK, 1)
    await asyncio.sleep(0)
    assert h.app.calls == [("b-1", 1)]
    assert h.reconciler.want(RESET, 2) == BREAK  # superseded, unconfirmed
    assert h.app.calls == [("b-1", 1)]  # nothing overtakes the call in flight
    h.app.gate.set()
    await h.settle()
    assert h.app.calls == [("b-1", 1), ("r-2", 2)]
    assert h.done == [("r-2", "success")]
    assert h.app.state == AppCircuit("closed", 2)


async def _parked_in_backoff(h: Harness) -> None:
    """The break is refused once: the reconciler parks in a backoff that never ends by itself."""
    h.sleeps.instant = False
    h.app.failures = [ActionUnavailable("circuit_break", "u", "refused")]
    h.reconciler.want(BREAK, 1)
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(h.sleeps.waits) == 1


async def test_a_decision_cuts_the_backoff_short(h: Harness) -> None:
    """A new decision does not wait out the old intent's backoff."""
    await _parked_in_backoff(h)
    h.reconciler.want(RESET, 2)
    await h.settle()
    assert h.app.calls == [("b-1", 1), ("r-2", 2)]


async def test_close_ends_a_backoff_at_once_and_sends_nothing_more(h: Harness) -> None:
    """At shutdown an unconfirmed intent waiting out its backoff is left to the next start."""
    await _parked_in_backoff(h)
    h.reconciler.close()
    await h.settle()
    assert h.app.calls == [("b-1", 1)]
    assert not h.reconciler.in_sync
    assert h.done == []


async def test_an_app_restart_resends_an_open_circuit_only(h: Harness) -> None:
    """A new process starts closed: an open circuit is sent again, a closed one is not."""
    h.reconciler.want(BREAK, 1)
    await h.settle()
    h.reconciler.app_restarted("counter_reset")
    assert h.reconciler.observed is None
    assert h.metric("leak_sidecar_circuit_observed_state") == -1
    await h.settle()
    assert h.app.calls == [("b-1", 1), ("b-1", 1)]
    assert h.metric("leak_sidecar_reconcile_triggers_total", trigger="app_restart") == 1
    h.reconciler.want(RESET, 2)
    await h.settle()
    h.reconciler.app_restarted("target_up_again")
    await h.settle()
    assert h.app.calls[-1] == ("r-2", 2)
    assert len(h.app.calls) == 3


async def test_the_state_endpoint_is_corrected_when_it_disagrees(h: Harness) -> None:
    """A state check that agrees costs nothing; one that disagrees re-sends the intent."""
    h.reconciler.want(BREAK, 1)
    await h.settle()
    await h.reconciler.check()
    assert len(h.app.calls) == 1
    assert h.metric("leak_sidecar_reconcile_checks_total", result="agree") == 1
    h.app.state = AppCircuit("closed", 0)  # it lost the break without restarting
    await h.reconciler.check()
    assert h.reconciler.observed is not None
    assert h.reconciler.observed.state == "closed"
    await h.settle()
    assert h.app.calls == [("b-1", 1), ("b-1", 1)]
    assert h.metric("leak_sidecar_reconcile_checks_total", result="disagree") == 1
    assert h.metric("leak_sidecar_reconcile_triggers_total", trigger="state_mismatch") == 1


async def test_a_409_naming_a_newer_generation_makes_the_intent_catch_up(h: Harness) -> None:
    """The app applied generation 5 (this sidecar lost its journal): the break is journaled
    at 6 by the owner and sent again with its key, and the app takes it."""
    h.app.failures = [GenerationBehind("circuit_break", "u", "u answered 409", 5)]
    h.reconciler.want(BREAK, 1)
    await h.settle()
    assert h.behind == [("b-1", 5)]
    assert h.app.calls == [("b-1", 1), ("b-1", 6)]
    assert h.app.state == AppCircuit("open", 6)
    assert h.reconciler.intent is not None
    assert h.reconciler.intent.generation == 6
    assert h.reconciler.in_sync
    assert h.metric("leak_sidecar_reconcile_total", outcome="rejected") == 1


async def test_a_call_no_longer_the_circuits_does_not_catch_up(h: Harness) -> None:
    """When the owner says the call was superseded, the intent keeps its generation."""
    gone = replace(BREAK, id="gone")
    h.app.failures = [GenerationBehind("circuit_break", "u", "u answered 409", 5)]
    h.reconciler.want(gone, 1)
    await h.settle()
    assert h.behind == [("gone", 5)]
    assert h.app.calls == [("gone", 1), ("gone", 1)]


async def test_a_state_endpoint_ahead_of_the_intent_makes_it_catch_up(h: Harness) -> None:
    """The app's state endpoint shows generation 7, closed, against a confirmed break at 1:
    the break is sent again at 8, not at 1 (which the app would refuse)."""
    h.reconciler.want(BREAK, 1)
    await h.settle()
    h.app.state = AppCircuit("closed", 7)
    await h.reconciler.check()
    await h.settle()
    assert h.behind == [("b-1", 7)]
    assert h.app.calls == [("b-1", 1), ("b-1", 8)]
    assert h.app.state == AppCircuit("open", 8)


async def test_a_restored_intent_is_sent_only_when_unconfirmed(h: Harness) -> None:
    """After a restart a confirmed intent is trusted; an unconfirmed one is sent at once."""
    h.reconciler.restore(BREAK, 3, confirmed=True)
    assert h.reconciler.task is None
    assert h.reconciler.in_sync
    h.reconciler.restore(RESET, 4, confirmed=False)
    await h.settle()
    assert h.app.calls == [("r-2", 4)]
    assert h.metric("leak_sidecar_reconcile_triggers_total", trigger="start") == 1


async def test_dry_run_sends_nothing(h: Harness) -> None:
    """In dry-run a decision is logged and counted, never sent, and restarts send nothing."""
    h.app.dry_run = True
    h.reconciler.want(BREAK, 1)
    await h.settle()
    h.reconciler.app_restarted("counter_reset")
    assert h.app.calls == []
    assert h.done == [("b-1", "dry_run")]
    assert h.metric("leak_sidecar_reconcile_total", outcome="dry_run") == 1


# -- through the dispatcher and the journal -----------------------------------------


async def test_a_restart_sends_only_the_current_intent_with_its_generation(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """A break cut off mid-call and the reset that superseded it: a restart sends the reset."""
    demo = DemoApp()
    async with rig(tmp_path, registry, demo=demo) as r:
        pool = webhook(alert("PoolSaturated", action="circuit_break"))
        await r.in_flight("/v1/circuit/break", "/alerts", pool)
        status, _ = await r.post("/v1/circuit/reset", {"reason": "false alarm"})
        assert status == 202
        assert list(r.path.dispatcher.pending) == ["a-2"]
        await r.path.dispatcher.drain(0.0)
    async with rig(tmp_path, CollectorRegistry(), demo=demo) as r:
        await r.settle()
        assert [
            (c.path, c.idempotency_key, c.headers["X-Leak-Sidecar-Generation"]) for c in r.calls()
        ] == [("/v1/circuit/reset", "a-2", "2")]
        state = r.path.breaker.state
        assert (state.desired, state.generation, state.call_id) == ("closed", 2, "a-2")
        assert r.path.reconciler.in_sync


# -- the app's state endpoint -------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b'{"state": "open", "generation": 4}', AppCircuit("open", 4)),
        (200, b'{"state": "closed"}', AppCircuit("closed", None)),
        (200, b'{"state": "broken", "generation": 4}', ActionRejected),
        (200, b'{"state": "open", "generation": "4"}', ActionRejected),
        (200, b"not json", ActionRejected),
        (503, b"later", ActionUnavailable),
    ],
)
async def test_observe_reads_the_state_endpoint_strictly(
    tmp_path: Path, status: int, body: bytes, expected: object
) -> None:
    """``{"state", "generation"}`` is read; anything else is an error, never a guess."""

    async def state(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/circuit", state)
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{server.port}"
        cfg = config(tmp_path, base, app={"base_url": base, "state_path": "/v1/circuit"})
        actuator = Actuator(cfg.app, cfg.actions, session, CollectorRegistry())
        assert actuator.observes
        if isinstance(expected, AppCircuit):
            assert await actuator.observe() == expected
        else:
            with pytest.raises(cast(type[Exception], expected)):
                await actuator.observe()


@pytest.mark.parametrize(
    ("body", "generation", "expected"),
    [
        (b'{"error": "older generation", "generation": 3}', 1, GenerationBehind),
        (b'{"generation": 3}', 3, GenerationBehind),
        (b'{"generation": 2}', 3, ActionRejected),  # not ahead: a plain refusal
        (b'{"generation": "3"}', 1, ActionRejected),
        (b'{"generation": -1}', 1, ActionRejected),
        (b"older generation", 1, ActionRejected),
    ],
)
async def test_a_409_is_read_for_the_generation_the_app_applied(
    tmp_path: Path, body: bytes, generation: int, expected: type[Exception]
) -> None:
    """Only a 409 whose JSON names an integer generation at or past the call's is behind."""

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=409, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/circuit/break", refuse)
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{server.port}"
        cfg = config(tmp_path, base, app={"base_url": base})
        actuator = Actuator(cfg.app, cfg.actions, session, CollectorRegistry())
        with pytest.raises(ActionRejected) as caught:
            await actuator.call(BREAK, generation)
    assert type(caught.value) is expected
    assert caught.value.status == 409
    if expected is GenerationBehind:
        assert cast(GenerationBehind, caught.value).applied == 3


async def test_a_version_2_journal_with_a_break_that_gave_up_sends_it_again(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Finding 1 left on disk: the break 0.2 journaled as gave_up is sent again at start."""
    circuit = {
        "state": "open", "since": NOW, "reason": "alert PoolSaturated firing",
        "source": "alert", "holders": [], "open_until": NOW + 60_000, "level": 0,
        "last_reset": None,
    }  # fmt: skip
    action = {
        "id": "old-1", "kind": "circuit_break", "reason": "alert PoolSaturated firing",
        "source": "alertmanager", "alerts": [], "created": NOW,
    }  # fmt: skip
    state = tmp_path / "state"
    state.mkdir()
    (state / "journal.jsonl").write_bytes(
        orjson.dumps(
            {"type": "decision", "version": 2, "at": NOW, "actions": [action],
             "circuit": circuit, "seen": {}, "cooldowns": {}}
        ) + b"\n"
        + orjson.dumps(
            {"type": "done", "version": 2, "at": NOW,
             "done": [{"id": "old-1", "outcome": "gave_up"}]}
        ) + b"\n"
    )  # fmt: skip
    async with rig(tmp_path, registry) as r:
        await r.settle()
        assert [(c.path, c.idempotency_key) for c in r.calls()] == [("/v1/circuit/break", "old-1")]
        s = r.path.breaker.state
        assert (s.state, s.call_id, s.generation) == ("open", "old-1", 0)
        assert r.path.reconciler.in_sync
    async with rig(tmp_path, CollectorRegistry()) as r:
        await r.settle()
        assert r.calls() == []  # confirmed and journaled: nothing to send again
        assert r.path.dispatcher.pending == {}


def test_reconcile_backoffs_are_checked_against_each_other() -> None:
    """A cap below the first wait is refused, naming both keys and values."""
    with pytest.raises(ValueError, match=r"actions.reconcile.max_backoff: must not be below "
                       r"actions.reconcile.initial_backoff \(2s\), got 1s"):  # fmt: skip
        ReconcileConfig.validate({"initial_backoff": "2s", "max_backoff": "1s"})
