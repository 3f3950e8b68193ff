"""A real Alertmanager's webhook bodies: our receiver accepts them, our fingerprints equal its.

Starts ``alertmanager`` on loopback with a webhook receiver pointing at a tiny sink,
posts alerts to its v2 API (then resolves them), and checks every captured body.
``UPDATE_FIXTURES=1`` rewrites ``tests/fixtures/alertmanager/*.json`` from the captures.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from actions_support import TOKEN, Rig, rig, until
from aiohttp import web
from procs import alertmanager, alertmanager_config
from prometheus_client import CollectorRegistry

from sidecar.actions.receiver import parse_payload
from sidecar.core.model import fingerprint

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent.parent / "fixtures" / "alertmanager"

# Label values chosen to stress the hash: UTF-8, separators, quotes, '=' and newlines.
ALERTS: list[dict[str, str]] = [
    {
        "alertname": "CacheGrowing",
        "action": "cache_flush",
        "cache": "sessions",
        "pod": "order-7d9f",
    },
    {"alertname": "CacheGrowing", "action": "cache_flush", "cache": "orders", "pod": "order-7d9f"},
    {
        "alertname": "PoolSaturated",
        "action": "circuit_break",
        "instance": "127.0.0.1:8080",
        "note": 'say "hi", a=b\nnext line',
        "unicode": "größe ☃ ÿ",
    },
]


class _Sink:
    """A webhook receiver that keeps every body Alertmanager posts."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.changed = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        self.changed.set()
        return web.Response(text="ok")

    async def wait_for(self, count: int, status: str) -> list[dict[str, Any]]:
        """Bodies until ``count`` alerts with ``status`` were seen (bounded wait)."""
        async with asyncio.timeout(30):
            while True:
                got = [b for b in self.bodies if b["status"] == status]
                seen = {a["fingerprint"] for b in got for a in b["alerts"] if a["status"] == status}
                if len(seen) >= count:
                    return got
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def sink() -> AsyncIterator[tuple[_Sink, int]]:
    """The sink on 127.0.0.1, a free port."""
    s = _Sink()
    app = web.Application()
    app.router.add_post("/hook", s.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield s, runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def _post(session: aiohttp.ClientSession, base: str, alerts: list[dict[str, Any]]) -> None:
    async with session.post(f"{base}/api/v2/alerts", json=alerts) as resp:
        assert resp.status == 200, await resp.text()


def _write_fixtures(firing: list[dict[str, Any]], resolved: list[dict[str, Any]]) -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for old in FIXTURES.glob("*.json"):
        old.unlink()
    for status, bodies in (("firing", firing), ("resolved", resolved)):
        for body in bodies:
            name = body["groupLabels"]["alertname"]
            path = FIXTURES / f"{name.lower()}_{status}.json"
            path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")


def _firing_alerts(r: Rig) -> float:
    return sum(
        r.metric("leak_sidecar_webhook_alerts_total", status="firing", action=action) or 0.0
        for action in ("cache_flush", "circuit_break")
    )


def _firing(start: dt.datetime) -> list[dict[str, Any]]:
    return [
        {
            "labels": labels,
            "annotations": {"summary": f"{labels['alertname']} fired"},
            "startsAt": start.isoformat(),
            "generatorURL": "http://leak-sidecar:9120/v1/alerts",
        }
        for labels in ALERTS
    ]


async def test_fingerprints_equal_alertmanager_on_captured_payloads(
    sink: tuple[_Sink, int], tmp_path: Path
) -> None:
    """Every fingerprint in a real webhook body equals ours, firing and resolved alike."""
    firing = _firing(dt.datetime.now(dt.UTC).replace(microsecond=0))
    hook = f"http://127.0.0.1:{sink[1]}/hook"
    async with (
        alertmanager(tmp_path / "am", alertmanager_config(hook)) as am,
        aiohttp.ClientSession() as session,
    ):
        await _post(session, am.url, firing)
        firing_bodies = await sink[0].wait_for(len(ALERTS), "firing")
        ended = dt.datetime.now(dt.UTC).isoformat()
        await _post(session, am.url, [{**a, "endsAt": ended} for a in firing])
        resolved_bodies = await sink[0].wait_for(len(ALERTS), "resolved")

    checked = set()
    for body in firing_bodies + resolved_bodies:
        payload = parse_payload(json.dumps(body).encode())
        assert (payload.version, len(payload.alerts)) == ("4", len(body["alerts"]))
        for a in body["alerts"]:
            assert fingerprint(a["labels"]) == a["fingerprint"], a["labels"]
            checked.add(a["fingerprint"])
    assert checked == {fingerprint(labels) for labels in ALERTS}
    if os.environ.get("UPDATE_FIXTURES") == "1":
        _write_fixtures(firing_bodies, resolved_bodies)


async def test_two_real_alertmanagers_deliver_into_the_receiver_once(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Two unclustered Alertmanagers (an HA pair) posting with a bearer token: one call each."""
    credentials = tmp_path / "token"
    credentials.write_text(TOKEN + "\n")
    firing = _firing(dt.datetime.now(dt.UTC).replace(microsecond=0))
    async with rig(tmp_path, registry) as r:
        url = str(r.client.make_url("/alerts"))
        async with (
            alertmanager(tmp_path / "am1", alertmanager_config(url, credentials)) as am1,
            alertmanager(tmp_path / "am2", alertmanager_config(url, credentials)) as am2,
            aiohttp.ClientSession() as session,
        ):
            for am in (am1, am2):
                await _post(session, am.url, firing)
            # Both replicas deliver all three alerts (in two or more requests). A replica
            # may send an alert twice: a group that changed within group_interval (its
            # alerts ingested apart, on a loaded machine) is sent again whole.
            await until(lambda: _firing_alerts(r) >= 2 * len(ALERTS))
        await r.settle()
        # Each instance acted on once; every later delivery of it is a duplicate, or, when
        # a replica split the CacheGrowing group, the flush cooldown skips the second.
        handled = r.metric("leak_sidecar_dedupe_total") or 0.0
        cooled = r.metric("leak_sidecar_cooldown_skipped_total", action="cache_flush") or 0.0
        assert handled + cooled == _firing_alerts(r) - len(ALERTS)
        assert sorted(c.path for c in r.calls()) == ["/v1/cache/flush", "/v1/circuit/break"]
        assert r.path.breaker.state.state == "open"
