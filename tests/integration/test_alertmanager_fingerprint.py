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
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from actions_support import TOKEN, Rig, rig, until
from aiohttp import web
from prometheus_client import CollectorRegistry

from sidecar.model import fingerprint
from sidecar.receiver import parse_payload

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


def _binary() -> str:
    for name in ("alertmanager", "prometheus-alertmanager"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("alertmanager is not installed (Debian: prometheus-alertmanager)")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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


def _write_config(workdir: Path, url: str, credentials: Path | None) -> Path:
    workdir.mkdir(parents=True)
    auth = (
        f"""
        http_config:
          authorization:
            type: Bearer
            credentials_file: {credentials}"""
        if credentials
        else ""
    )
    config = workdir / "alertmanager.yml"
    config.write_text(
        f"""
route:
  receiver: sidecar
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 200ms
  repeat_interval: 1h
receivers:
  - name: sidecar
    webhook_configs:
      - url: {url}
        send_resolved: true{auth}
"""
    )
    return config


def _spawn(config: Path, port: int) -> subprocess.Popen[bytes]:
    log = (config.parent / "alertmanager.log").open("ab")
    with log:
        return subprocess.Popen(
            [
                _binary(),
                f"--config.file={config}",
                f"--storage.path={config.parent / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--web.external-url=http://alertmanager.example:9093",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@asynccontextmanager
async def _alertmanager(
    workdir: Path, url: str, credentials: Path | None = None
) -> AsyncIterator[str]:
    """A real, ready Alertmanager posting to ``url``, clustering off, tiny group timings."""
    config = _write_config(workdir, url, credentials)
    # A free port can be taken before Alertmanager binds it: then start again.
    for _ in range(3):
        port = _port()
        proc = _spawn(config, port)
        try:
            if await _ready(proc, f"http://127.0.0.1:{port}"):
                yield f"http://127.0.0.1:{port}"
                return
        finally:
            _stop(proc)
    raise AssertionError(f"alertmanager did not start, see {workdir / 'alertmanager.log'}")


async def _ready(proc: subprocess.Popen[bytes], base: str) -> bool:
    """True once ``/-/ready`` answers 200; False if the process exited first."""
    async with asyncio.timeout(20), aiohttp.ClientSession() as session:
        while proc.poll() is None:
            try:
                async with session.get(f"{base}/-/ready") as resp:
                    if resp.status == 200:
                        return True
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    return False


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
    async with (
        _alertmanager(tmp_path / "am", f"http://127.0.0.1:{sink[1]}/hook") as base,
        aiohttp.ClientSession() as session,
    ):
        await _post(session, base, firing)
        firing_bodies = await sink[0].wait_for(len(ALERTS), "firing")
        ended = dt.datetime.now(dt.UTC).isoformat()
        await _post(session, base, [{**a, "endsAt": ended} for a in firing])
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
            _alertmanager(tmp_path / "am1", url, credentials) as am1,
            _alertmanager(tmp_path / "am2", url, credentials) as am2,
            aiohttp.ClientSession() as session,
        ):
            for base in (am1, am2):
                await _post(session, base, firing)
            # Both replicas deliver all three alerts (in two or more requests).
            await until(lambda: _firing_alerts(r) == 2 * len(ALERTS))
        await r.settle()
        # Each instance acted on once; a replica's repeat is a duplicate, or, when a
        # replica split the CacheGrowing group, the flush cooldown skips the second.
        handled = r.metric("leak_sidecar_dedupe_total") or 0.0
        cooled = r.metric("leak_sidecar_cooldown_skipped_total", action="cache_flush") or 0.0
        assert handled + cooled == len(ALERTS)
        assert sorted(c.path for c in r.calls()) == ["/v1/cache/flush", "/v1/circuit/break"]
        assert r.path.breaker.state.state == "open"
