"""Forwarding: an alert about another sidecar reaches its owner, only at allowed addresses.

Two action paths over real HTTP on loopback: the owner (pod ``p-1``) and the sidecar the
notification lands on (pod ``p-0``), which forwards to the owner's port.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from actions_support import AUTH, TOKEN, alert, rig, webhook
from conftest import free_port
from prometheus_client import CollectorRegistry

from sidecar.actions.forward import HOP_HEADER, Forwarder, ForwardFailed
from sidecar.actions.receiver import WebhookAlert
from sidecar.core.config_fleet import ForwardConfig
from sidecar.core.validation import convert

FORWARDED = "leak_sidecar_forwarded_alerts_total"


def _landing(port: int) -> dict[str, Any]:
    """Config sections of the sidecar the notification lands on."""
    return {
        "token": TOKEN,
        "rules": {"files": [], "external_labels": {"pod": "p-0"}},
        "fleet": {
            "forward": {
                "allow": ["127.0.0.0/8"],
                "port": port,
                "instance": "127.0.0.9:1",
                "retry": {
                    "attempts": 3,
                    "initial_backoff": "100ms",
                    "max_backoff": "1s",
                    "max_elapsed": "5s",
                },
            }
        },
    }


async def test_another_pods_alert_is_forwarded_and_acted_on_by_its_owner_once(
    tmp_path: Path,
) -> None:
    """Delivered to p-0, an alert about p-1 is posted to p-1's /alerts with the token and the
    hop header; p-0 answers after p-1 accepted; a retry of the delivery calls nothing twice."""
    owner_registry, landing_registry = CollectorRegistry(), CollectorRegistry()
    rules = {"files": [], "external_labels": {"pod": "p-1"}}
    async with rig(tmp_path / "owner", owner_registry, rules=rules) as owner:
        port = owner.client.server.port
        assert port is not None
        theirs = alert(action="circuit_break", pod="p-1", instance=f"127.0.0.1:{port}")
        async with rig(tmp_path / "landing", landing_registry, **_landing(port)) as landing:
            first = await landing.post("/alerts", webhook(theirs))
            again = await landing.post("/alerts", webhook(theirs))
            await owner.settle()
            await landing.settle()

    assert first == (200, {**first[1], "forwarded": 1, "actions": []})
    assert again == (200, {**again[1], "forwarded": 1, "actions": []})
    assert landing.calls() == []
    [call] = owner.calls()
    assert (call.path, call.body["source"]) == ("/v1/circuit/break", "alertmanager")
    assert call.body["alerts"][0]["labels"]["pod"] == "p-1"
    assert landing.metric(FORWARDED, outcome="forwarded") == 2.0
    assert owner.metric("leak_sidecar_webhook_requests_total", code="200") == 2.0
    assert owner.metric("leak_sidecar_dedupe_total") == 1.0


async def test_owners_outside_the_allowlist_or_port_are_refused(tmp_path: Path) -> None:
    """A public address, another port, a host name or no instance at all: nothing is sent,
    each is counted as refused, and the delivery is accepted (nothing to retry)."""
    port = free_port()
    labels = [
        {"instance": f"10.1.2.3:{port}"},
        {"instance": f"127.0.0.1:{port + 1}"},
        {"instance": f"evil.example:{port}"},
        {},
    ]
    alerts = [
        alert(f"A{i}", action="circuit_break", pod="p-1", **extra) for i, extra in enumerate(labels)
    ]
    async with rig(tmp_path, CollectorRegistry(), **_landing(port)) as r:
        status, body = await r.post("/alerts", webhook(*alerts))

    assert (status, body["forwarded"], body["actions"]) == (200, 0, [])
    assert r.metric(FORWARDED, outcome="refused") == 4.0
    assert r.metric(FORWARDED, outcome="forwarded") == 0.0
    assert r.calls() == []


async def test_a_forwarded_alert_is_never_forwarded_again(tmp_path: Path) -> None:
    """An alert that came with the hop header is refused, not sent on: no loop is possible."""
    port = free_port()
    theirs = alert(action="circuit_break", pod="p-1", instance=f"127.0.0.1:{port}")
    async with rig(tmp_path, CollectorRegistry(), **_landing(port)) as r:
        headers = {**AUTH, HOP_HEADER: "127.0.0.5:9120"}
        status, body = await r.post("/alerts", webhook(theirs), headers=headers)

    assert (status, body["forwarded"]) == (200, 0)
    assert r.metric(FORWARDED, outcome="refused") == 1.0


async def test_an_owner_that_does_not_accept_makes_the_delivery_fail_for_a_retry(
    tmp_path: Path,
) -> None:
    """Nobody listening at the owner's address: retried within fleet.forward.retry, then 502
    so that Alertmanager retries; this pod's own alert in the same group was acted on."""
    port = free_port()
    theirs = alert("Theirs", action="circuit_break", pod="p-1", instance=f"127.0.0.1:{port}")
    ours = alert("Ours", action="cache_flush", pod="p-0")
    async with rig(tmp_path, CollectorRegistry(), **_landing(port)) as r:
        status, body = await r.post("/alerts", webhook(ours, theirs))
        await r.settle()

    assert status == 502
    assert body["error"].startswith(
        f"alerts for another sidecar were not accepted: 127.0.0.1:{port}: "
    )
    assert r.metric(FORWARDED, outcome="failed") == 1.0
    assert r.metric("leak_sidecar_forward_retries_total") == 2.0
    assert len(r.sleeps.waits) == 2
    assert [c.path for c in r.calls()] == ["/v1/cache/flush"]


async def test_an_owner_refusing_the_token_fails_at_once_without_retries(tmp_path: Path) -> None:
    """A 401 from the owner (another token) cannot be cured by trying again: no retry, 502,
    counted as failed, and the owner's app is not called."""
    rules = {"files": [], "external_labels": {"pod": "p-1"}}
    async with rig(tmp_path / "owner", CollectorRegistry(), rules=rules) as owner:
        port = owner.client.server.port
        assert port is not None
        theirs = alert(action="circuit_break", pod="p-1", instance=f"127.0.0.1:{port}")
        landing_cfg = {**_landing(port), "token": "another-token"}
        async with rig(tmp_path / "landing", CollectorRegistry(), **landing_cfg) as landing:
            status, body = await landing.post("/alerts", webhook(theirs))

    assert status == 502
    assert body["error"] == (
        f"alerts for another sidecar were not accepted: 127.0.0.1:{port}: owner answered 401: "
        + '{"status": "error", "error": "invalid bearer token"}'
    )
    assert landing.metric(FORWARDED, outcome="failed") == 1.0
    assert landing.metric("leak_sidecar_forward_retries_total") == 0.0
    assert owner.calls() == []


async def test_each_forward_carries_the_token_its_source_gives_then(tmp_path: Path) -> None:
    """The forwarder asks its token source at each forward (the server's, which re-reads a
    rotated token file): refused with the old token, accepted with the new one."""
    rules = {"files": [], "external_labels": {"pod": "p-1"}}
    async with (
        rig(tmp_path / "owner", CollectorRegistry(), rules=rules) as owner,
        aiohttp.ClientSession() as session,
    ):
        port = owner.client.server.port
        assert port is not None
        raw = alert(action="circuit_break", pod="p-1", instance=f"127.0.0.1:{port}")
        theirs = convert(raw, WebhookAlert).to_alert()
        cfg = ForwardConfig.validate({"allow": ["127.0.0.0/8"], "port": port})
        token = ["before-the-rotation"]
        forwarder = Forwarder(
            cfg, session, CollectorRegistry(), token=lambda: token[0], identity="p-0"
        )
        with pytest.raises(ForwardFailed) as refused:
            await forwarder.forward([theirs], hop=None)
        token[0] = TOKEN
        forwarded = await forwarder.forward([theirs], hop=None)
        await owner.settle()

    assert refused.value.failures == (
        f"127.0.0.1:{port}: owner answered 401: "
        '{"status": "error", "error": "invalid bearer token"}',
    )
    assert forwarded == 1
    assert [c.body["reason"] for c in owner.calls("/v1/circuit/break")] == [
        "alert CacheGrowing firing"
    ]
