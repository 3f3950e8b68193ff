"""The circuit state machine: transitions, auto-reset conditions, probation, holds, timer."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import replace
from pathlib import Path

import msgspec
import pytest
from actions_support import AUTH, STARTS, View, alert, rig, until, webhook
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from sidecar.actions.breaker import Breaker, CircuitRecord, CircuitState
from sidecar.core.config_actions import BreakerConfig
from sidecar.core.model import Alert, fingerprint

NOW = 1_000_000
MIN = 60_000


def _alert(name: str = "PoolSaturated", status: str = "firing", minute: int = 0) -> Alert:
    starts = dt.datetime(2024, 1, 1, 0, minute, tzinfo=dt.UTC)
    labels = {"alertname": name, "action": "circuit_break"}
    return Alert(status, labels, {}, starts, fingerprint=fingerprint(labels))  # type: ignore[arg-type]


def _breaker(view: View | None = None, **cfg: object) -> Breaker:
    return Breaker(
        BreakerConfig.validate(cfg), view or View(), CollectorRegistry(), random=lambda: 0.5
    )


def test_firing_alert_opens_a_closed_circuit_and_later_ones_join() -> None:
    """The first firing alert opens (call the app); a second only joins the holders."""
    b = _breaker()
    s, opened = b.fire(CircuitState(), _alert("A"), NOW)
    assert opened is True
    assert (s.state, s.since_ms, s.source, s.reason) == ("open", NOW, "alert", "alert A firing")
    assert s.open_until_ms == NOW + MIN
    s2, opened2 = b.fire(s, _alert("B"), NOW + 5)
    assert opened2 is False
    assert [h.alert.labels["alertname"] for h in s2.holders] == ["A", "B"]
    assert (s2.since_ms, s2.open_until_ms) == (NOW, NOW + MIN)


def test_a_nameless_alert_is_named_by_its_fingerprint() -> None:
    """An alert without an alertname opens the circuit with its fingerprint as the reason."""
    b = _breaker()
    labels = {"action": "circuit_break"}
    nameless = Alert(
        "firing", labels, {}, dt.datetime(2024, 1, 1, tzinfo=dt.UTC), fingerprint="0123456789abcdef"
    )
    s, _ = b.fire(CircuitState(), nameless, NOW)
    assert s.reason == "alert 0123456789abcdef firing"


def test_auto_reset_needs_resolution_min_open_and_cleared_data() -> None:
    """Each condition blocks the reset in turn, with its reason; then it is due."""
    view = View(stale={"A"})
    b = _breaker(view)
    s, _ = b.fire(CircuitState(), _alert("A"), NOW)
    assert b.blocked(s, NOW + 2 * MIN) == "1 holding alert(s) still firing"
    s = b.resolve(s, _alert("A", "resolved"))
    assert b.blocked(s, NOW + MIN - 1) == "min_open not passed"
    assert b.blocked(s, NOW + MIN) == "condition not cleared on fresh data for A"
    view.stale.clear()
    assert b.blocked(s, NOW + MIN) is None


def test_resolution_of_another_instance_does_not_release() -> None:
    """A resolved notification for an older instance (other startsAt) is not a resolution."""
    b = _breaker()
    s, _ = b.fire(CircuitState(), _alert("A", minute=5), NOW)
    s2 = b.resolve(s, _alert("A", "resolved", minute=1))
    assert s2 == s
    assert b.blocked(s2, NOW + MIN) == "1 holding alert(s) still firing"


def test_newer_instance_of_a_holder_replaces_the_older() -> None:
    """One holder per fingerprint: a re-fired instance supersedes; its resolution releases."""
    b = _breaker()
    s, _ = b.fire(CircuitState(), _alert("A", minute=1), NOW)
    s, opened = b.fire(s, _alert("A", minute=5), NOW + 1)
    assert opened is False
    assert [h.alert.starts_at.minute for h in s.holders] == [5]
    s = b.resolve(s, _alert("A", "resolved", minute=5))
    assert b.blocked(s, NOW + MIN) is None


def test_reopening_within_probation_doubles_open_time_with_jitter_up_to_max() -> None:
    """Envoy-like growth: x2 per re-open within probation, +jitter, capped at max_open."""
    b = _breaker(min_open="1m", max_open="5m", probation="10m", jitter=0.2)
    s, _ = b.fire(CircuitState(), _alert(), NOW)
    s = b.reset(s, "cleared", "alert", NOW + MIN)
    s, _ = b.fire(s, _alert(minute=2), NOW + 2 * MIN)
    # level 1: 60s * 2 * (1 + 0.2 * 0.5) = 132s
    assert (s.level, s.open_until_ms) == (1, NOW + 2 * MIN + 132_000)
    s = b.reset(s, "cleared", "alert", NOW + 5 * MIN)
    s, _ = b.fire(s, _alert(minute=6), NOW + 6 * MIN)
    # level 2: 60s * 4 * 1.1 = 264s
    assert (s.level, s.open_until_ms) == (2, NOW + 6 * MIN + 264_000)
    s = b.reset(s, "cleared", "alert", NOW + 11 * MIN)
    s, _ = b.fire(s, _alert(minute=12), NOW + 12 * MIN)
    assert (s.level, s.open_until_ms) == (3, NOW + 12 * MIN + 300_000)  # capped at max_open
    s = b.reset(s, "cleared", "alert", NOW + 20 * MIN)
    s, _ = b.fire(s, _alert(minute=31), NOW + 31 * MIN)  # 11m after the reset: past probation
    assert (s.level, s.open_until_ms) == (0, NOW + 31 * MIN + MIN)


def test_manual_hold_survives_resolution_until_manual_reset() -> None:
    """A held circuit never resets automatically; a manual reset closes it."""
    b = _breaker()
    s, _ = b.fire(CircuitState(), _alert("A"), NOW)
    s = b.manual_break(s, "investigating", hold=True, now=NOW + 1)
    assert (s.state, s.source, s.reason, s.open_until_ms) == (
        "held",
        "operator",
        "investigating",
        None,
    )
    s = b.resolve(s, _alert("A", "resolved"))
    assert b.blocked(s, NOW + 100 * MIN) == "held by an operator"
    s = b.manual_break(s, "again, no hold", hold=False, now=NOW + 2)
    assert s.state == "held"
    s = b.reset(s, "fixed", "operator", NOW + 3)
    assert (s.state, s.holders, s.last_reset_ms, s.open_until_ms) == ("closed", (), NOW + 3, None)


def test_manual_break_without_hold_resets_automatically() -> None:
    """An operator's plain break has no holders: it resets once min_open has passed."""
    b = _breaker()
    s = b.manual_break(CircuitState(), "drill", hold=False, now=NOW)
    assert (s.state, s.source, s.open_until_ms) == ("open", "operator", NOW + MIN)
    assert b.blocked(s, NOW + MIN - 1) == "min_open not passed"
    assert b.blocked(s, NOW + MIN) is None


def test_state_round_trips_through_its_record() -> None:
    """What the journal stores is what a restart reads back: holders keep the fingerprint
    they came with (here Alertmanager's, not one computed from the labels)."""
    b = _breaker()
    sent = "0123456789abcdef"
    s, _ = b.fire(CircuitState(), replace(_alert("A"), fingerprint=sent), NOW)
    s = b.resolve(s, replace(_alert("A", "resolved"), fingerprint=sent))
    s = replace(s, level=2, last_reset_ms=NOW - 5)
    data = msgspec.json.encode(s.to_record())
    back = CircuitState.from_record(msgspec.json.decode(data, type=CircuitRecord))
    assert back == s
    assert [(h.key, h.alert.fingerprint, h.resolved) for h in back.holders] == [(sent, sent, True)]


@pytest.mark.parametrize("change", [{"state": "half-open"}, {"source": "cron"}])
def test_damaged_state_record_is_refused(change: dict[str, str]) -> None:
    """A journal record with an unknown state or source fails to decode, never a bad state."""
    s, _ = _breaker().fire(CircuitState(), _alert(), NOW)
    record = {**msgspec.to_builtins(s.to_record()), **change}
    msgspec.convert(msgspec.to_builtins(s.to_record()), CircuitRecord)  # the intact one decodes
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(record, CircuitRecord)


def test_state_gauge_is_one_hot() -> None:
    """leak_sidecar_circuit_state has exactly one state at 1 after each commit."""
    registry = CollectorRegistry()
    b = Breaker(BreakerConfig(), View(), registry)

    def states() -> dict[str, float | None]:
        return {
            name: registry.get_sample_value("leak_sidecar_circuit_state", {"state": name})
            for name in ("closed", "open", "held")
        }

    assert states() == {"closed": 1.0, "open": 0.0, "held": 0.0}
    b.commit(b.manual_break(b.state, "x", hold=True, now=NOW))
    assert states() == {"closed": 0.0, "open": 0.0, "held": 1.0}


async def test_tick_resets_after_min_open_when_resolved_with_data(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Resolved with fresh data: no reset before min_open, one reset call after it."""
    async with rig(tmp_path, registry) as r:
        await r.post("/alerts", webhook(alert("PoolSaturated", action="circuit_break")))
        await r.post(
            "/alerts", webhook(alert("PoolSaturated", status="resolved", action="circuit_break"))
        )
        r.clock.advance(59.999)
        assert await r.path.dispatcher.tick() is None
        r.clock.advance(0.001)
        action = await r.path.dispatcher.tick()
        assert action is not None
        assert (action.kind, action.source) == ("circuit_reset", "breaker")
        await r.settle()
        assert [(c.path, c.idempotency_key) for c in r.calls()] == [
            ("/v1/circuit/break", "a-1"),
            ("/v1/circuit/reset", "a-2"),
        ]
        assert r.calls()[1].body["alerts"][0]["labels"]["alertname"] == "PoolSaturated"
        circuit = await (await r.client.get("/v1/circuit")).json()
        assert (circuit["state"], circuit["source"], circuit["held_by"]) == ("closed", "alert", [])
        assert await r.path.dispatcher.tick() is None


async def test_tick_never_resets_when_the_target_went_away(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """A resolution caused by missing data keeps the circuit open, and says why once."""
    async with rig(tmp_path, registry) as r:
        r.view.stale.add("PoolSaturated")
        await r.post("/alerts", webhook(alert("PoolSaturated", action="circuit_break")))
        await r.post(
            "/alerts", webhook(alert("PoolSaturated", status="resolved", action="circuit_break"))
        )
        with capture_logs() as events:
            for _ in range(3):
                r.clock.advance(600)
                assert await r.path.dispatcher.tick() is None
        assert [e["why"] for e in events if e["event"] == "circuit.reset_waiting"] == [
            "condition not cleared on fresh data for PoolSaturated"
        ]
        await r.settle()
        assert [c.path for c in r.calls()] == ["/v1/circuit/break"]
        r.view.stale.clear()  # the data came back and the condition is false on it
        assert await r.path.dispatcher.tick() is not None


async def test_held_manual_break_survives_resolution(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """POST /v1/circuit/break with hold keeps the circuit open past resolution and min_open."""
    async with rig(tmp_path, registry) as r:
        await r.post("/alerts", webhook(alert("PoolSaturated", action="circuit_break")))
        status, body = await r.post("/v1/circuit/break", {"reason": "incident 42", "hold": True})
        assert status == 202
        assert body["circuit"]["state"] == "held"
        await r.post(
            "/alerts", webhook(alert("PoolSaturated", status="resolved", action="circuit_break"))
        )
        r.clock.advance(3600)
        assert await r.path.dispatcher.tick() is None
        circuit = await (await r.client.get("/v1/circuit")).json()
        assert (circuit["state"], circuit["reason"], circuit["earliest_reset"]) == (
            "held",
            "incident 42",
            None,
        )
        status, _ = await r.post("/v1/circuit/reset", {})
        assert status == 202
        await r.settle()
        assert [c.path for c in r.calls()] == [
            "/v1/circuit/break",
            "/v1/circuit/break",
            "/v1/circuit/reset",
        ]
        assert r.calls()[1].body["reason"] == "incident 42"
        assert r.calls()[1].body["source"] == "operator"


async def test_circuit_view_shows_state_since_reason_holders_and_reset(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """GET /v1/circuit answers without a token and shows everything an operator asks."""
    async with rig(tmp_path, registry) as r:
        await r.post("/alerts", webhook(alert("PoolSaturated", action="circuit_break")))
        await r.settle()
        resp = await r.client.get("/v1/circuit")
        assert resp.status == 200
        body = await resp.json()
        [holder] = body.pop("held_by")
        assert body == {
            "state": "open",
            "since": "2023-11-14T22:13:20.000Z",  # T0
            "reason": "alert PoolSaturated firing",
            "source": "alert",
            "earliest_reset": "2023-11-14T22:14:20.000Z",
            "dry_run": False,
            "pending_actions": [],
            "desired": "open",
            "generation": 1,
            "observed": {
                "state": "open",
                "generation": 1,
                "at": "2023-11-14T22:13:20.000Z",
                "via": "call",
            },
            "in_sync": True,
            "last_reconcile": {
                "at": "2023-11-14T22:13:20.000Z",
                "outcome": "confirmed",
                "trigger": "decision",
                "attempts": 1,
                "error": "",
            },
        }
        labels = {"alertname": "PoolSaturated", "action": "circuit_break"}
        assert holder == {
            "status": "firing",
            "labels": labels,
            "annotations": {"summary": "PoolSaturated is firing"},
            "fingerprint": fingerprint(labels),
            "startsAt": STARTS,
            "generatorURL": "http://prometheus:9090/graph",
        }


async def test_dry_run_decides_but_calls_nothing(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """In dry-run the state moves and every would-be call is counted and logged, none made."""
    async with rig(tmp_path, registry, breaker={"dry_run": True}) as r:
        with capture_logs() as events:
            await r.post("/alerts", webhook(alert("PoolSaturated", action="circuit_break")))
            await r.settle()
        assert r.calls() == []
        assert r.path.breaker.state.state == "open"
        assert (
            r.metric("leak_sidecar_actions_total", action="circuit_break", outcome="dry_run") == 1
        )
        [dry] = [e for e in events if e["event"] == "action.dry_run"]
        assert dry["url"] == r.path.cfg.app.base_url + "/v1/circuit/break"
        circuit = await (await r.client.get("/v1/circuit")).json()
        assert circuit["dry_run"] is True


async def test_run_loop_ticks_until_stopped(tmp_path: Path, registry: CollectorRegistry) -> None:
    """ActionPath.run re-checks the reset on its interval and returns once stop is set."""
    async with rig(tmp_path, registry, breaker={"check_interval": "10ms"}) as r:
        await r.post("/alerts", webhook(alert("PoolSaturated", action="circuit_break")))
        await r.post(
            "/alerts", webhook(alert("PoolSaturated", status="resolved", action="circuit_break"))
        )
        r.clock.advance(60)
        stop = asyncio.Event()
        runner = asyncio.create_task(r.path.run(stop))
        await until(lambda: r.path.breaker.state.state == "closed")
        stop.set()
        async with asyncio.timeout(10):
            await runner


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        (
            "/v1/circuit/break",
            {"hold": "yes"},
            422,
            "invalid request body: hold: expected bool, got str",
        ),
        (
            "/v1/circuit/break",
            {"hodl": True},
            422,
            "invalid request body: hodl: unknown key",
        ),
        (
            "/v1/circuit/reset",
            {"reason": ""},
            422,
            "invalid request body: reason: expected str of length >= 1",
        ),
        (
            "/v1/cache/flush",
            [],
            422,
            "invalid request body: expected object, got array",
        ),
        (
            "/v1/circuit/break",
            {"reason": "x" * 501, "hold": True},
            422,
            "invalid request body: reason: expected str of length <= 500",
        ),
    ],
)
async def test_manual_api_validates_bodies(
    tmp_path: Path, registry: CollectorRegistry, path: str, body: object, status: int, error: str
) -> None:
    """Operator requests are validated; a refused one changes nothing and calls nothing."""
    async with rig(tmp_path, registry) as r:
        got = await r.post(path, body)
        assert got == (status, {"status": "error", "error": error})
        resp = await r.client.post(path, data=b"{}", headers={**AUTH, "Content-Type": "text/plain"})
        assert (resp.status, await resp.json()) == (
            415,
            {
                "status": "error",
                "error": "unsupported content type 'text/plain', expected 'application/json'",
            },
        )
        resp = await r.client.post(path)
        assert (resp.status, await resp.json()) == (
            401,
            {
                "status": "error",
                "error": "missing bearer token: send 'Authorization: Bearer <token>'",
            },
        )
        await r.settle()
        assert r.calls() == []
        assert r.path.breaker.state.state == "closed"


async def test_manual_flush_with_empty_body_starts_the_cooldown(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """An empty body is allowed; the flush runs and an alert flush right after is cooled down."""
    async with rig(tmp_path, registry) as r:
        resp = await r.client.post("/v1/cache/flush", headers=AUTH)
        assert resp.status == 202
        assert (await resp.json())["action"]["reason"] == "manual flush"
        _, body = await r.post("/alerts", webhook(alert("MapGrowing", action="cache_flush")))
        assert body["cooled_down"] == 1
        await r.settle()
        [call] = r.calls()
        assert (call.path, call.body["source"], call.body["alerts"]) == (
            "/v1/cache/flush",
            "operator",
            [],
        )


@pytest.mark.parametrize("path", ["/v1/circuit/break", "/v1/circuit/reset", "/v1/cache/flush"])
async def test_manual_request_is_503_when_the_journal_fails(
    tmp_path: Path, registry: CollectorRegistry, path: str
) -> None:
    """An operator request that cannot be journaled changes nothing and says so."""
    async with rig(tmp_path, registry) as r:
        await r.path.journal.close()
        r.path.journal.path.unlink()
        r.path.journal.path.mkdir()
        assert await r.post(path, {}) == (
            503,
            {
                "status": "error",
                "error": "cannot journal the action, nothing was done; retry later",
            },
        )
        await r.settle()
        assert r.calls() == []
        assert r.path.breaker.state.state == "closed"
        r.path.journal.path.rmdir()
