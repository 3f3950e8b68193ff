"""POST /alerts: validation, auth, per-alert routing, dedupe, cooldowns, journal-then-answer."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest
from actions_support import AUTH, STARTS, TOKEN, alert, rig, webhook
from prometheus_client import CollectorRegistry, generate_latest
from structlog.testing import capture_logs

from sidecar.actions.routing import Route, Router
from sidecar.core.config_actions import ActionsConfig
from sidecar.core.model import Alert, fingerprint
from sidecar.web import actions_api, alerts_api

FIXTURES = Path(__file__).parent / "fixtures" / "alertmanager"
JSON = {**AUTH, "Content-Type": "application/json"}


def _body(**changes: Any) -> bytes:
    """A valid one-alert payload with top-level or first-alert fields changed."""
    payload = webhook(alert(action="circuit_break"))
    for key, value in changes.items():
        if key.startswith("alert_"):
            payload["alerts"][0][key.removeprefix("alert_")] = value
        else:
            payload[key] = value
    return json.dumps(payload).encode()


BAD_INPUT = [
    pytest.param(
        {**AUTH, "Content-Type": "text/plain"},
        _body(),
        415,
        "unsupported content type 'text/plain', expected 'application/json'",
        id="wrong-content-type",
    ),
    pytest.param(
        AUTH,
        _body(),
        415,
        "unsupported content type 'application/octet-stream', expected 'application/json'",
        id="no-content-type",
    ),
    pytest.param(
        JSON,
        b"{not json",
        422,
        # The parser's own account of where it stopped follows: not pinned.
        "invalid webhook payload: Invalid JSON: ...",
        id="non-json",
    ),
    pytest.param(
        JSON,
        b"",
        422,
        "invalid webhook payload: Invalid JSON: ...",
        id="empty-body",
    ),
    pytest.param(
        JSON,
        b'{"version": "4", "alerts": [{"x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}]}",
        422,
        "invalid webhook payload: Invalid JSON: nested too deeply",
        id="nested-too-deeply",
    ),
    pytest.param(
        JSON,
        b"[]",
        422,
        "invalid webhook payload: expected object, got array",
        id="not-an-object",
    ),
    pytest.param(
        JSON,
        _body(version="3"),
        422,
        "invalid webhook payload: version: unsupported payload version '3', expected '4'",
        id="wrong-version",
    ),
    pytest.param(
        JSON,
        _body(version=4),
        422,
        "invalid webhook payload: version: expected str, got int",
        id="version-wrong-type",
    ),
    pytest.param(
        JSON,
        b'{"version": "4"}',
        422,
        "invalid webhook payload: alerts: required key is missing",
        id="missing-alerts",
    ),
    pytest.param(
        JSON,
        _body(alerts="x"),
        422,
        "invalid webhook payload: alerts: expected array, got str",
        id="alerts-wrong-type",
    ),
    pytest.param(
        JSON,
        _body(alert_status="pending"),
        422,
        "invalid webhook payload: alerts.0.status: invalid enum value",
        id="unknown-status",
    ),
    pytest.param(
        JSON,
        _body(alert_startsAt="2023-11-14T22:00:00"),
        422,
        "invalid webhook payload: alerts.0.startsAt: "
        "expected a time with its offset (Z or +hh:mm), got '2023-11-14T22:00:00'",
        id="naive-time",
    ),
    pytest.param(
        JSON,
        _body(alert_status="<script>" * 1000),
        422,
        # A hostile value is not repeated back.
        "invalid webhook payload: alerts.0.status: invalid enum value",
        id="hostile-status",
    ),
    pytest.param(
        JSON,
        _body(alert_startsAt="2023-13-14T22:00:00Z"),
        422,
        "invalid webhook payload: alerts.0.startsAt: "
        "invalid time '2023-13-14T22:00:00Z': month must be in 1..12",
        id="impossible-time",
    ),
    pytest.param(
        JSON,
        _body(truncatedAlerts=-1),
        422,
        "invalid webhook payload: truncatedAlerts: expected int >= 0",
        id="negative-count",
    ),
    pytest.param(
        JSON,
        _body(alert_generatorURL="http://x/" + "a" * 5000),
        422,
        "invalid webhook payload: alerts.0.generatorURL: expected str of length <= 4096",
        id="long-generator-url",
    ),
    pytest.param(
        JSON,
        _body(alert_labels={}),
        422,
        "invalid webhook payload: alerts.0.labels: expected object of length >= 1",
        id="no-labels",
    ),
    pytest.param(
        JSON,
        _body(alert_labels={"alertname": "A", "severity": 3}),
        422,
        "invalid webhook payload: alerts.0.labels: expected str, got int",
        id="label-wrong-type",
    ),
    pytest.param(
        JSON,
        _body(alert_fingerprint="../../etc"),
        422,
        "invalid webhook payload: alerts.0.fingerprint: "
        "expected str matching regex '^(?:[0-9a-f]{16})?$'",
        id="bad-fingerprint",
    ),
    pytest.param(
        JSON,
        json.dumps({"version": "4", "alerts": [{"labels": {"a": "b"}}]}).encode(),
        422,
        # The first problem only, as msgspec stops there.
        "invalid webhook payload: alerts.0.status: required key is missing",
        id="missing-alert-fields",
    ),
    pytest.param(
        JSON,
        b"[" * (2 * 1024 * 1024),
        413,
        # aiohttp's own sentence follows: not pinned.
        "request body too large: ...",
        id="huge-body",
    ),
    pytest.param(
        {"Content-Type": "application/json"},
        _body(),
        401,
        "missing bearer token: send 'Authorization: Bearer <token>'",
        id="no-token",
    ),
    pytest.param(
        {"Content-Type": "application/json", "Authorization": "Bearer wrong"},
        _body(),
        401,
        "invalid bearer token",
        id="wrong-token",
    ),
]


@pytest.mark.parametrize(("headers", "body", "status", "error"), BAD_INPUT)
async def test_bad_input_is_refused_and_nothing_is_acted_on(
    tmp_path: Path,
    registry: CollectorRegistry,
    headers: dict[str, str],
    body: bytes,
    status: int,
    error: str,
) -> None:
    """Every malformed or unauthenticated request gets its 4xx and message; the app sees nothing."""
    async with rig(tmp_path, registry) as r:
        # A stream for the huge body, as aiohttp asks for large uploads.
        data = io.BytesIO(body) if len(body) > 65536 else body
        resp = await r.client.post("/alerts", data=data, headers=headers)
        assert resp.status == status
        answer = await resp.json()
        assert answer["status"] == "error"
        if error.endswith("..."):  # ours, then a library's words
            assert answer["error"].startswith(error.removesuffix("..."))
        else:
            assert answer == {"status": "error", "error": error}
        await r.settle()
        assert r.calls() == []
        assert r.path.breaker.state.state == "closed"
        assert r.path.dispatcher.pending == {}
        assert (
            r.metric("leak_sidecar_webhook_alerts_total", status="firing", action="circuit_break")
            is None
        )
        # Every answer is counted, the auth middleware's 401 included.
        assert r.metric("leak_sidecar_webhook_requests_total", code=str(status)) == 1.0


async def test_one_firing_alert_calls_break_once_with_body_and_key(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """A firing circuit_break alert is answered 200 and makes exactly one break call."""
    async with rig(tmp_path, registry) as r:
        status, body = await r.post("/alerts", webhook(alert(action="circuit_break", pod="p-1")))
        assert status == 200
        assert body == {
            "status": "success",
            "alerts": 1,
            "duplicates": 0,
            "cooled_down": 0,
            "forwarded": 0,
            "actions": [{"id": "a-1", "action": "circuit_break"}],
        }
        await r.settle()
        [call] = r.calls()
        labels = {"alertname": "CacheGrowing", "action": "circuit_break", "pod": "p-1"}
        assert (call.method, call.path, call.idempotency_key) == (
            "POST",
            "/v1/circuit/break",
            "a-1",
        )
        assert call.body == {
            "action": "circuit_break",
            "id": "a-1",
            "reason": "alert CacheGrowing firing",
            "source": "alertmanager",
            "alerts": [{"labels": labels, "fingerprint": fingerprint(labels), "startsAt": STARTS}],
            "generation": 1,
        }
        assert call.headers["X-Leak-Sidecar-Generation"] == "1"
        assert r.metric("leak_sidecar_webhook_requests_total", code="200") == 1.0
        assert (
            r.metric("leak_sidecar_webhook_alerts_total", status="firing", action="circuit_break")
            == 1.0
        )
        assert r.metric("leak_sidecar_circuit_state", state="open") == 1.0
        assert r.metric("leak_sidecar_circuit_state", state="closed") == 0.0


async def test_alertmanager_fingerprint_is_kept_and_one_is_computed_only_when_absent(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """The fingerprint a webhook alert carries is its identity everywhere; a missing one is ours."""
    async with rig(tmp_path, registry) as r:
        given = alert("A", action="cache_flush", fingerprint="0123456789abcdef")
        await r.post("/alerts", webhook(given, alert("B", action="cache_flush")))
        await r.settle()
        [call] = r.calls()
        assert [a["fingerprint"] for a in call.body["alerts"]] == [
            "0123456789abcdef",
            fingerprint({"alertname": "B", "action": "cache_flush"}),
        ]
        # Dedupe goes by the same identity: the alert sent again is a duplicate.
        _, body = await r.post("/alerts", webhook(given))
        assert (body["actions"], body["duplicates"]) == ([], 1)


async def test_same_payload_three_times_concurrently_calls_once(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Repeats of one alert instance (HA replicas, resends) are deduplicated: one call."""
    async with rig(tmp_path, registry) as r:
        payload = webhook(alert(action="circuit_break"))
        results = await asyncio.gather(*(r.post("/alerts", payload) for _ in range(3)))
        assert [s for s, _ in results] == [200, 200, 200]
        assert sorted(b["duplicates"] for _, b in results) == [0, 1, 1]
        await r.settle()
        assert len(r.calls()) == 1
        assert r.metric("leak_sidecar_dedupe_total") == 2.0


async def test_dedupe_memory_is_bounded_in_count_and_time(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Past dedupe_max the oldest instance is forgotten first; past dedupe_ttl every one is."""
    async with rig(
        tmp_path, registry, actions={"dedupe_max": 2, "dedupe_ttl": "1h", "cooldowns": {}}
    ) as r:
        for name in ("A", "B", "C"):
            await r.post("/alerts", webhook(alert(name, action="cache_flush")))
        _, body = await r.post("/alerts", webhook(alert("C", action="cache_flush")))
        assert body["duplicates"] == 1
        _, body = await r.post("/alerts", webhook(alert("A", action="cache_flush")))
        assert (body["duplicates"], len(body["actions"])) == (0, 1)  # A was forgotten
        r.clock.advance(3601)
        _, body = await r.post("/alerts", webhook(alert("A", action="cache_flush")))
        assert (body["duplicates"], len(body["actions"])) == (0, 1)
        await r.settle()
        assert len(r.calls()) == 5


async def test_firing_after_its_own_resolution_is_stale(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Out of order (HA replicas): a firing notice after the same instance resolved is ignored."""
    async with rig(tmp_path, registry) as r:
        resolved = alert("PoolSaturated", status="resolved", action="circuit_break")
        await r.post("/alerts", webhook(resolved))
        _, body = await r.post("/alerts", webhook(alert("PoolSaturated", action="circuit_break")))
        assert (body["duplicates"], body["actions"]) == (1, [])
        _, body = await r.post(
            "/alerts",
            webhook(alert("PoolSaturated", action="circuit_break", starts="2023-11-14T22:30:00Z")),
        )
        assert body["actions"] == [{"id": "a-1", "action": "circuit_break"}]  # a new instance
        await r.settle()
        assert [c.path for c in r.calls()] == ["/v1/circuit/break"]


async def test_each_alert_acts_with_its_own_status_not_common_labels(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """A group notification is split: a firing flush alert flushes, a resolved one does not."""
    async with rig(tmp_path, registry) as r:
        payload = webhook(
            alert("MapGrowing", action="cache_flush", cache="sessions"),
            alert("MapGrowing", status="resolved", action="cache_flush", cache="orders"),
            commonLabels={"action": "circuit_break"},
        )
        status, body = await r.post("/alerts", payload)
        assert (status, body["actions"]) == (200, [{"id": "a-1", "action": "cache_flush"}])
        await r.settle()
        [call] = r.calls()
        assert call.path == "/v1/cache/flush"
        assert [a["labels"]["cache"] for a in call.body["alerts"]] == ["sessions"]
        assert r.path.breaker.state.state == "closed"


async def test_fields_alertmanager_adds_later_are_ignored(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Unknown fields, and known ones the sidecar does not use, whatever their shape, pass."""
    async with rig(tmp_path, registry) as r:
        a = {**alert(action="cache_flush"), "silencedBy": [], "somethingNew": {"x": 1}}
        payload = webhook(a, newTopLevel=True, truncatedAlerts=2, receiver={"name": "x"})
        status, _ = await r.post("/alerts", payload)
        assert status == 200
        await r.settle()
        assert [c.path for c in r.calls()] == ["/v1/cache/flush"]


async def test_invalid_action_label_is_counted_not_acted_on(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """An unknown action value is a counted, logged rejection of that alert only."""
    with capture_logs() as events:
        async with rig(tmp_path, registry) as r:
            payload = webhook(alert(action="reboot_node"), alert("Other", action="cache_flush"))
            status, body = await r.post("/alerts", payload)
            assert (status, body["actions"]) == (200, [{"id": "a-1", "action": "cache_flush"}])
            await r.settle()
            assert [c.path for c in r.calls()] == ["/v1/cache/flush"]
            assert (
                r.metric("leak_sidecar_webhook_alerts_total", status="firing", action="invalid")
                == 1
            )
            [invalid] = [e for e in events if e["event"] == "alert.invalid_action"]
            assert (invalid["alertname"], invalid["value"]) == ("CacheGrowing", "reboot_node")


async def test_flush_cooldown_is_respected_across_instances(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """A second flush alert within the 5m default cooldown is skipped; after it, it flushes."""
    async with rig(tmp_path, registry) as r:
        await r.post("/alerts", webhook(alert("A", action="cache_flush")))
        r.clock.advance(299)
        _, body = await r.post("/alerts", webhook(alert("B", action="cache_flush")))
        assert (body["actions"], body["cooled_down"]) == ([], 1)
        r.clock.advance(1)
        _, body = await r.post("/alerts", webhook(alert("C", action="cache_flush")))
        assert body["actions"] == [{"id": "a-2", "action": "cache_flush"}]
        await r.settle()
        assert [c.body["reason"] for c in r.calls()] == ["alert A firing", "alert C firing"]
        assert r.metric("leak_sidecar_cooldown_skipped_total", action="cache_flush") == 1.0


async def test_alerts_of_one_delivery_share_one_call(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Two flush alerts in one notification make one flush naming both, cooldown or not."""
    async with rig(tmp_path, registry) as r:
        payload = webhook(alert("A", action="cache_flush"), alert("B", action="cache_flush"))
        _, body = await r.post("/alerts", payload)
        assert body["cooled_down"] == 0
        await r.settle()
        [call] = r.calls()
        assert call.body["reason"] == "alert A, B firing"
        assert [a["labels"]["alertname"] for a in call.body["alerts"]] == ["A", "B"]


async def test_in_process_delivery_shares_dedupe_with_http(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """An alert the rule engine delivered in process is not acted on again over HTTP."""
    async with rig(tmp_path, registry) as r:
        labels = {"alertname": "CacheGrowing", "action": "circuit_break"}
        starts = dt.datetime(2023, 11, 14, 22, tzinfo=dt.UTC)
        result = await r.path.receiver.deliver(
            [Alert("firing", labels, {}, starts, fingerprint=fingerprint(labels))], source="rules"
        )
        assert [a.id for a in result.actions] == ["a-1"]
        _, body = await r.post("/alerts", webhook(alert(action="circuit_break")))
        assert (body["actions"], body["duplicates"]) == ([], 1)
        await r.settle()
        [call] = r.calls()
        assert call.body["source"] == "rules"


async def test_journal_failure_is_503_and_nothing_is_done(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """When the journal cannot be written the answer is 503 and no call or state change follows."""
    async with rig(tmp_path, registry) as r:
        await r.path.journal.close()
        journal = r.path.journal.path
        journal.unlink()
        journal.mkdir()  # appending to a directory fails
        status, body = await r.post("/alerts", webhook(alert(action="circuit_break")))
        assert (status, body) == (
            503,
            {
                "status": "error",
                "error": "cannot journal the actions, nothing was done; retry later",
            },
        )
        await r.settle()
        assert r.calls() == []
        assert r.path.breaker.state.state == "closed"
        journal.rmdir()
        status, body = await r.post("/alerts", webhook(alert(action="circuit_break")))
        assert (status, body["duplicates"]) == (200, 0)
        await r.settle()
        assert len(r.calls()) == 1


async def test_token_never_in_logs_or_metrics(tmp_path: Path, registry: CollectorRegistry) -> None:
    """Neither a right nor a wrong token reaches the log or /metrics."""
    with capture_logs() as events:
        async with rig(tmp_path, registry) as r:
            await r.post("/alerts", webhook(alert(action="circuit_break")))
            await r.post(
                "/alerts",
                webhook(alert(action="circuit_break")),
                headers={"Authorization": f"Bearer {TOKEN}x"},
            )
            await r.settle()
            metrics = (await (await r.client.get("/metrics")).read()).decode()
            logged = repr(events)
            assert TOKEN not in logged
            assert TOKEN not in metrics
            assert TOKEN not in generate_latest(registry).decode()
            # The log was captured: the checks above could have found it.
            assert [e["event"] for e in events].count("circuit.open") == 1


def test_router_config_routes_override_the_label() -> None:
    """Routes match by equality and anchored regex, first wins, `none` mutes, else the label."""
    cfg = ActionsConfig.validate(
        {
            "routes": [
                {"match": {"severity": "info"}, "action": "none"},
                {"match_re": {"cache": "sess.*"}, "action": "cache_flush", "cooldown": "1m"},
                {"match": {"alertname": "PoolSaturated"}, "action": "circuit_break"},
            ]
        }
    )
    router = Router(cfg)
    assert router.route({"action": "circuit_break", "severity": "info"}) == Route(
        "none", matched="route[0]"
    )
    assert router.route({"cache": "sessions"}) == Route("cache_flush", 60.0, "route[1]", "route[1]")
    # Anchored: "my-sessions" does not match "sess.*".
    assert router.route({"cache": "my-sessions"}) == Route("none")
    assert router.route({"alertname": "PoolSaturated", "action": "cache_flush"}) == Route(
        "circuit_break", 0.0, "circuit_break", "route[2]"
    )
    assert router.route({"action": "cache_flush"}) == Route(
        "cache_flush", 300.0, "cache_flush", "label"
    )
    assert router.route({"action": "none"}) == Route("none", matched="label")
    assert router.route({"action": "drop_tables"}) == Route("invalid", matched="label")


def test_router_missing_label_matches_as_empty() -> None:
    """As in Alertmanager, a missing label equals the empty string in match and match_re."""
    cfg = ActionsConfig.validate(
        {"routes": [{"match": {"team": ""}, "match_re": {"env": "|dev"}, "action": "cache_flush"}]}
    )
    router = Router(cfg)
    assert router.route({"alertname": "X"}) == Route(
        "cache_flush", 300.0, "cache_flush", "route[0]"
    )
    assert router.route({"alertname": "X", "env": "prod"}) == Route("none")


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.name)
async def test_captured_alertmanager_payloads_parse_and_fingerprints_match(
    tmp_path: Path, registry: CollectorRegistry, fixture: Path
) -> None:
    """Bodies captured from a real Alertmanager are accepted; our fingerprint equals theirs."""
    payload = _load(fixture)
    for a in payload["alerts"]:
        assert fingerprint(a["labels"]) == a["fingerprint"]
    async with rig(tmp_path, registry) as r:
        status, body = await r.post("/alerts", payload)
        assert (status, body["alerts"]) == (200, len(payload["alerts"]))


async def test_action_path_metric_names_are_pinned(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """The action path's metric names and types are public surface: they change on purpose only."""
    async with rig(tmp_path, registry):
        families = sorted((m.name, m.type) for m in registry.collect())
    assert families == [
        ("leak_sidecar_action_retries", "counter"),
        ("leak_sidecar_actions", "counter"),
        ("leak_sidecar_actions_given_up", "counter"),
        ("leak_sidecar_circuit_desired_state", "gauge"),
        ("leak_sidecar_circuit_generation", "gauge"),
        ("leak_sidecar_circuit_holders_dropped", "counter"),
        ("leak_sidecar_circuit_observed_state", "gauge"),
        ("leak_sidecar_circuit_state", "gauge"),
        ("leak_sidecar_cooldown_skipped", "counter"),
        ("leak_sidecar_dedupe", "counter"),
        ("leak_sidecar_forward_retries", "counter"),
        ("leak_sidecar_forwarded_alerts", "counter"),
        ("leak_sidecar_http_unauthorized", "counter"),
        ("leak_sidecar_journal_commits", "counter"),
        ("leak_sidecar_journal_corrupt_lines", "counter"),
        ("leak_sidecar_journal_entries", "counter"),
        ("leak_sidecar_journal_writable", "gauge"),
        ("leak_sidecar_journal_write_failures", "counter"),
        ("leak_sidecar_reconcile", "counter"),
        ("leak_sidecar_reconcile_checks", "counter"),
        ("leak_sidecar_reconcile_triggers", "counter"),
        ("leak_sidecar_webhook_alerts", "counter"),
        ("leak_sidecar_webhook_requests", "counter"),
    ]


def test_action_path_routes_are_pinned() -> None:
    """POST /alerts and the operator API, exactly."""
    receiver_routes = [
        (r.method, r.path) for r in alerts_api.routes(MagicMock(), CollectorRegistry())
    ]
    api_routes = [(r.method, r.path) for r in actions_api.routes(MagicMock())]
    assert receiver_routes + api_routes == [
        ("POST", "/alerts"),
        ("GET", "/v1/circuit"),
        ("POST", "/v1/circuit/break"),
        ("POST", "/v1/circuit/reset"),
        ("POST", "/v1/cache/flush"),
    ]


def test_router_ignores_alerts_about_another_pod() -> None:
    """An alert whose identity label (an external label) names another pod is foreign."""
    router = Router(ActionsConfig(), identity={"pod": "orders-1", "namespace": "prod"})
    assert router.route({"action": "circuit_break", "pod": "orders-2"}) == Route(
        "foreign", matched="label pod"
    )
    assert router.route({"action": "circuit_break", "pod": "orders-1", "namespace": "dev"}) == (
        Route("foreign", matched="label namespace")
    )
    # Ours, or silent on who it is about: routed as usual.
    ours = Route("circuit_break", 0.0, "circuit_break", "label")
    assert router.route({"action": "circuit_break", "pod": "orders-1"}) == ours
    assert router.route({"action": "circuit_break"}) == ours


async def test_alert_about_another_pod_calls_nothing(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """A fleet route that delivers another pod's alert here is counted as foreign, no call."""
    async with rig(tmp_path, registry, rules={"external_labels": {"pod": "p-1"}}) as r:
        status, body = await r.post("/alerts", webhook(alert(action="circuit_break", pod="p-2")))
        assert status == 200
        assert body["actions"] == []
        await r.settle()
        assert r.calls() == []
        assert (
            r.metric("leak_sidecar_webhook_alerts_total", status="firing", action="foreign") == 1.0
        )


async def test_circuit_transition_logs_times_in_rfc3339(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """circuit.open names when it may reset as RFC 3339, like every time in the logs."""
    async with rig(tmp_path, registry) as r:
        with capture_logs() as events:
            status, _ = await r.post("/alerts", webhook(alert(action="circuit_break")))
        assert status == 200
    (opened,) = [e for e in events if e["event"] == "circuit.open"]
    # min_open (60s) after the rig's clock, T0.
    assert opened["open_until"] == "2023-11-14T22:14:20.000Z"
