"""The action path against the demo app over real HTTP: faults, real timers, SIGKILL restarts."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from actions_support import AUTH, TOKEN, alert, demo_app, journal_entries, rig, until, webhook
from procs import sidecar_command
from prometheus_client import CollectorRegistry

from sidecar.demo.app import DemoApp, Fault

pytestmark = pytest.mark.integration

BREAK = "/v1/circuit/break"


def _outcomes(path: Path) -> list[str]:
    return [d["outcome"] for e in journal_entries(path) for d in e.get("done", ())]


FLUSH = "/v1/cache/flush"

FAULTS = [
    pytest.param(Fault(path=FLUSH, status=500, times=None), 3, id="status-500"),
    pytest.param(Fault(path=FLUSH, drop=True, times=None), 3, id="dropped-mid-response"),
    pytest.param(Fault(path=FLUSH, delay=30, times=None), 0, id="hanging-past-timeout"),
    pytest.param(None, 0, id="connection-refused"),
]


@pytest.mark.parametrize(("fault", "recorded"), FAULTS)
async def test_flush_faults_are_retried_bounded_and_recorded_while_serving(
    tmp_path: Path, registry: CollectorRegistry, fault: Fault | None, recorded: int
) -> None:
    """A flush (fire and forget) costs three attempts, then gave_up is journaled; the
    sidecar keeps answering."""
    demo = DemoApp()
    sections: dict[str, Any] = {"actions": {"timeout": "300ms"}}
    # A port bound and never listening refuses connections, and no server started
    # meanwhile (the rig's own app) can be given it, as a port just closed could be.
    with socket.socket() as refusing:
        refusing.bind(("127.0.0.1", 0))
        if fault is None:
            sections["app"] = {"base_url": f"http://127.0.0.1:{refusing.getsockname()[1]}"}
        else:
            demo.faults.add(fault)
        async with rig(tmp_path, registry, demo=demo, **sections) as r:
            started = time.monotonic()
            status, _ = await r.post("/alerts", webhook(alert("MapGrowing", action="cache_flush")))
            assert status == 200
            # While the call struggles, the sidecar answers at once.
            assert (await r.client.get("/healthz")).status == 200
            circuit = await (await r.client.get("/v1/circuit")).json()
            if fault is not None and fault.delay:
                assert [a["id"] for a in circuit["pending_actions"]] == ["a-1"]
            assert time.monotonic() - started < 1.0
            await r.settle()
            assert len(r.calls(FLUSH)) == recorded
            assert (
                r.metric("leak_sidecar_actions_total", action="cache_flush", outcome="unavailable")
                == 3
            )
            assert r.metric("leak_sidecar_action_retries_total", action="cache_flush") == 2
            assert r.metric("leak_sidecar_actions_given_up_total", action="cache_flush") == 1
            assert _outcomes(r.path.journal.path) == ["gave_up"]
            assert r.path.dispatcher.pending == {}


BREAK_FAULTS = [
    pytest.param(Fault(path=BREAK, status=500, times=4), 5, id="status-500"),
    pytest.param(Fault(path=BREAK, status=400, times=4), 5, id="rejected-400"),
    pytest.param(Fault(path=BREAK, drop=True, times=4), 5, id="dropped-mid-response"),
    pytest.param(Fault(path=BREAK, delay=30, times=4), 1, id="hanging-past-timeout"),
]


@pytest.mark.parametrize(("fault", "recorded"), BREAK_FAULTS)
async def test_break_faults_are_resent_until_the_app_confirms(
    tmp_path: Path, registry: CollectorRegistry, fault: Fault, recorded: int
) -> None:
    """A failed break is never given up: re-sent, same key and generation, until confirmed."""
    demo = DemoApp()
    demo.faults.add(fault)
    async with rig(tmp_path, registry, demo=demo, actions={"timeout": "300ms"}) as r:
        status, _ = await r.post("/alerts", webhook(alert("PoolSaturated", action="circuit_break")))
        assert status == 200
        assert (await r.client.get("/healthz")).status == 200
        await r.settle()
        calls = r.calls(BREAK)
        assert len(calls) == recorded
        assert {(c.idempotency_key, c.body["generation"]) for c in calls} == {("a-1", 1)}
        assert demo.sim.circuit()["state"] == "open"
        failed = "rejected" if fault.status == 400 else "unavailable"
        assert r.metric("leak_sidecar_reconcile_total", outcome=failed) == 4
        assert r.metric("leak_sidecar_reconcile_total", outcome="confirmed") == 1
        assert r.metric("leak_sidecar_actions_given_up_total", action="circuit_break") is None
        # Capped exponential backoff between the re-sends, drawn with full jitter.
        assert len(r.sleeps.waits) == 4
        assert all(0 <= w <= 30 for w in r.sleeps.waits)
        circuit = await (await r.client.get("/v1/circuit")).json()
        assert (circuit["desired"], circuit["observed"]["state"], circuit["in_sync"]) == (
            "open",
            "open",
            True,
        )
        assert circuit["last_reconcile"]["attempts"] == 5
        assert _outcomes(r.path.journal.path) == ["success"]
        assert r.path.dispatcher.pending == {}


async def test_real_timers_break_then_reset_after_min_open(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """With the real clock and the run loop: break at once, reset only once min_open passed."""
    async with rig(
        tmp_path,
        registry,
        real_time=True,
        breaker={"min_open": "400ms", "check_interval": "20ms"},
    ) as r:
        stop = asyncio.Event()
        loop = asyncio.create_task(r.path.run(stop))
        try:
            await r.post("/alerts", webhook(alert("PoolSaturated", action="circuit_break")))
            opened = time.monotonic()
            await r.post(
                "/alerts",
                webhook(alert("PoolSaturated", status="resolved", action="circuit_break")),
            )
            await until(lambda: len(r.calls()) == 2)
            assert time.monotonic() - opened >= 0.4
            assert [c.path for c in r.calls()] == [BREAK, "/v1/circuit/reset"]
            assert r.demo.sim.circuit()["state"] == "closed"
        finally:
            stop.set()
            await loop


# -- restart after SIGKILL ------------------------------------------------------------


def _config(tmp_path: Path, base_url: str) -> Path:
    path = tmp_path / "sidecar.yaml"
    path.write_text(
        json.dumps(
            {
                "app": {"base_url": base_url},
                "rules": {"files": []},
                "server": {"listen": "127.0.0.1:0"},
                "state_dir": str(tmp_path / "state"),
                "actions": {"timeout": "20s"},
                "log": {"format": "json"},
            }
        )
    )
    return path


async def test_sigkill_after_ack_calls_once_more_on_restart_and_keeps_state(
    tmp_path: Path,
) -> None:
    """Killed mid-call after the 200: the restart makes the call once, same key, circuit open."""
    demo = DemoApp()
    demo.faults.add(Fault(path=BREAK, delay=30, times=1))  # the first call hangs
    async with demo_app(demo) as (_, base_url), aiohttp.ClientSession() as http:
        config, log = _config(tmp_path, base_url), tmp_path / "sidecar.log"
        payload = webhook(alert("PoolSaturated", action="circuit_break"))
        async with sidecar_command(config, log, TOKEN) as sc:
            async with http.post(f"{sc.url}/alerts", json=payload, headers=AUTH) as resp:
                assert resp.status == 200
                [action] = (await resp.json())["actions"]
            await until(lambda: demo.faults.pending() == [])  # the call reached the app
            sc.proc.send_signal(signal.SIGKILL)
            await sc.proc.wait()
        assert demo.calls == []  # the app never finished that call

        async with sidecar_command(config, log, TOKEN) as sc:
            await until(lambda: len(demo.calls) == 1)
            [call] = demo.calls
            assert (call.path, call.idempotency_key, call.status) == (BREAK, action["id"], 200)
            assert call.body["alerts"][0]["labels"]["alertname"] == "PoolSaturated"
            async with http.get(f"{sc.url}/v1/circuit") as resp:
                circuit = await resp.json()
            assert (circuit["state"], circuit["source"]) == ("open", "alert")
            assert [h["labels"]["alertname"] for h in circuit["held_by"]] == ["PoolSaturated"]
            # Alertmanager's repeat after the restart is recognised.
            async with http.post(f"{sc.url}/alerts", json=payload, headers=AUTH) as resp:
                assert (await resp.json())["duplicates"] == 1
            # An operator's hold, then another SIGKILL.
            async with http.post(
                f"{sc.url}/v1/circuit/break",
                json={"reason": "incident", "hold": True},
                headers=AUTH,
            ) as resp:
                assert resp.status == 202
            await until(lambda: len(demo.calls) == 2)
            journal = tmp_path / "state" / "journal.jsonl"
            await until(lambda: _outcomes(journal) == ["success", "success"])
            sc.proc.send_signal(signal.SIGKILL)
            await sc.proc.wait()

        async with sidecar_command(config, log, TOKEN) as sc:
            async with http.get(f"{sc.url}/v1/circuit") as resp:
                circuit = await resp.json()
            assert (circuit["state"], circuit["reason"], circuit["pending_actions"]) == (
                "held",
                "incident",
                [],
            )
            await asyncio.sleep(0.3)  # nothing finished is called again
            assert len(demo.calls) == 2
            sc.proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                assert await sc.proc.wait() == 0
