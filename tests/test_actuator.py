"""Calls to the app: configured URLs only, body and Idempotency-Key, bounded retries, outcomes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from actions_support import Sleeps, config, demo_app, firing_action
from aiohttp import web
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from sidecar.actions.actuator import Actuator, Outcome
from sidecar.core.model import fingerprint
from sidecar.demo.app import DemoApp, Fault

LABELS = {"alertname": "PoolSaturated", "action": "circuit_break", "callback": "http://evil/"}
ACTION = firing_action("act-1", LABELS)


class _Run:
    def __init__(self, actuator: Actuator, sleeps: Sleeps, registry: CollectorRegistry) -> None:
        self.actuator = actuator
        self.sleeps = sleeps
        self.registry = registry

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def outcomes(self) -> dict[str, float]:
        out = {}
        for outcome in ("success", "rejected", "unavailable", "dry_run"):
            value = self.metric(
                "leak_sidecar_actions_total", action="circuit_break", outcome=outcome
            )
            if value:
                out[outcome] = value
        return out


@asynccontextmanager
async def _actuator(
    tmp_path: Path, base_url: str, *, dry_run: bool = False, **actions: Any
) -> AsyncIterator[_Run]:
    cfg = config(tmp_path, base_url, actions=actions) if actions else config(tmp_path, base_url)
    registry, sleeps = CollectorRegistry(), Sleeps()
    async with aiohttp.ClientSession() as session:
        actuator = Actuator(cfg.app, cfg.actions, session, registry, dry_run=dry_run, sleep=sleeps)
        yield _Run(actuator, sleeps, registry)


async def test_success_is_one_call_with_body_and_key(tmp_path: Path) -> None:
    """One POST to the configured break URL, the JSON body and the Idempotency-Key."""
    async with demo_app() as (demo, url), _actuator(tmp_path, url) as run:
        assert await run.actuator.run(ACTION) == "success"
    [call] = demo.calls
    assert (call.method, call.path, call.idempotency_key) == ("POST", "/v1/circuit/break", "act-1")
    assert call.headers["Content-Type"] == "application/json"
    assert call.body == {
        "action": "circuit_break",
        "id": "act-1",
        "reason": "alert PoolSaturated firing",
        "source": "alertmanager",
        "alerts": [
            {
                "labels": LABELS,
                "fingerprint": fingerprint(LABELS),
                "startsAt": "2024-01-01T00:00:00Z",
            }
        ],
    }
    assert run.outcomes() == {"success": 1.0}
    assert run.sleeps.waits == []


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_transient_status_is_retried_with_the_same_key(tmp_path: Path, status: int) -> None:
    """5xx and 429 are retried with growing, jittered waits; every attempt carries one key."""
    demo = DemoApp()
    demo.faults.add(Fault(path="/v1/circuit/break", status=status, times=2))
    attempts: list[None] = []
    async with demo_app(demo) as (_, url), _actuator(tmp_path, url) as run:
        with capture_logs() as events:
            assert await run.actuator.run(ACTION, lambda: attempts.append(None)) == "success"
    assert [(c.status, c.idempotency_key) for c in demo.calls] == [
        (status, "act-1"),
        (status, "act-1"),
        (200, "act-1"),
    ]
    assert len(attempts) == 3  # told of each attempt, for the status page
    # Full jitter: uniform in [0, initial * 2**(n-1)], initial 100ms.
    assert len(run.sleeps.waits) == 2
    assert 0 <= run.sleeps.waits[0] <= 0.1
    assert 0 <= run.sleeps.waits[1] <= 0.2
    assert run.outcomes() == {"unavailable": 2.0, "success": 1.0}
    assert run.metric("leak_sidecar_action_retries_total", action="circuit_break") == 2.0
    retries = [e for e in events if e["event"] == "action.retry_scheduled"]
    assert [(e["attempt"], e["action"], e["action_id"]) for e in retries] == [
        (1, "circuit_break", "act-1"),
        (2, "circuit_break", "act-1"),
    ]
    assert retries[0]["error"] == (
        f'{url}/v1/circuit/break answered {status}: {{"error":"injected fault"}}'
    )


@pytest.mark.parametrize("status", [400, 404, 409])
async def test_other_4xx_is_rejected_without_retry(tmp_path: Path, status: int) -> None:
    """The app said no: one attempt, no sleep, outcome rejected."""
    demo = DemoApp()
    demo.faults.add(Fault(path="/v1/circuit/break", status=status, times=None))
    async with demo_app(demo) as (_, url), _actuator(tmp_path, url) as run:
        with capture_logs() as events:
            assert await run.actuator.run(ACTION) == "rejected"
    assert len(demo.calls) == 1
    assert run.sleeps.waits == []
    assert run.outcomes() == {"rejected": 1.0}
    [rejected] = [e for e in events if e["event"] == "action.rejected"]
    assert (rejected["status"], rejected["error"]) == (
        status,
        f'{url}/v1/circuit/break answered {status}: {{"error":"injected fault"}}',
    )


async def test_connection_refused_gives_up_after_the_attempts(tmp_path: Path) -> None:
    """Nothing listening: three attempts, two waits, then gave_up, counted."""
    async with demo_app() as (_, url):
        pass  # stopped: its port now refuses
    async with _actuator(tmp_path, url) as run:
        with capture_logs() as events:
            assert await run.actuator.run(ACTION) == "gave_up"
    assert len(run.sleeps.waits) == 2
    assert run.outcomes() == {"unavailable": 3.0}
    assert run.metric("leak_sidecar_actions_given_up_total", action="circuit_break") == 1.0
    [gave_up] = [e for e in events if e["event"] == "action.gave_up"]
    assert gave_up["error"].startswith(f"cannot reach {url}/v1/circuit/break: ")


async def test_hanging_app_times_out_per_attempt(tmp_path: Path) -> None:
    """An app that does not answer within actions.timeout costs a bounded time per attempt."""
    demo = DemoApp()
    demo.faults.add(Fault(path="/v1/circuit/break", delay=30, times=None))
    async with (
        demo_app(demo) as (_, url),
        _actuator(
            tmp_path,
            url,
            timeout="200ms",
            retry={
                "attempts": 2,
                "initial_backoff": "10ms",
                "max_backoff": "10ms",
                "max_elapsed": "10s",
            },
        ) as run,
    ):
        started = time.monotonic()
        with capture_logs() as events:
            assert await run.actuator.run(ACTION) == "gave_up"
        elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 5
    assert run.outcomes() == {"unavailable": 2.0}
    [gave_up] = [e for e in events if e["event"] == "action.gave_up"]
    assert gave_up["error"] == f"no answer from {url}/v1/circuit/break within 200ms"


async def test_connection_dropped_mid_response_is_retried(tmp_path: Path) -> None:
    """A reply cut off mid-body fails the attempt; the retry with the same key succeeds."""
    demo = DemoApp()
    demo.faults.add(Fault(path="/v1/circuit/break", drop=True, times=1))
    async with demo_app(demo) as (_, url), _actuator(tmp_path, url) as run:
        assert await run.actuator.run(ACTION) == "success"
    assert [(c.idempotency_key, c.replayed) for c in demo.calls] == [
        ("act-1", False),
        ("act-1", True),
    ]
    assert run.outcomes() == {"unavailable": 1.0, "success": 1.0}


async def test_dry_run_calls_nothing(tmp_path: Path) -> None:
    """Dry-run: outcome dry_run, counted, no request."""
    async with demo_app() as (demo, url), _actuator(tmp_path, url, dry_run=True) as run:
        outcome: Outcome = await run.actuator.run(ACTION)
    assert outcome == "dry_run"
    assert demo.calls == []
    assert run.outcomes() == {"dry_run": 1.0}


async def test_redirects_are_not_followed(tmp_path: Path) -> None:
    """A 3xx is refused as is: the call never goes to a URL that is not from config."""
    followed: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("/elsewhere")

    async def elsewhere(request: web.Request) -> web.Response:
        followed.append(request.path)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/v1/circuit/break", redirect)
    app.router.add_post("/elsewhere", elsewhere)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with _actuator(tmp_path, url) as run:
            assert await run.actuator.run(ACTION) == "rejected"
    finally:
        await runner.cleanup()
    assert followed == []
    assert run.outcomes() == {"rejected": 1.0}


async def test_urls_come_from_config_only(tmp_path: Path) -> None:
    """Every action kind maps to base_url + its configured path; alert labels play no part."""
    async with demo_app() as (_, url):
        cfg = config(tmp_path, url, app={"base_url": url, "flush_path": "/admin/flush"})
        async with aiohttp.ClientSession() as session:
            actuator = Actuator(cfg.app, cfg.actions, session, CollectorRegistry())
            assert [actuator.url(k) for k in ("circuit_break", "circuit_reset", "cache_flush")] == [
                f"{url}/v1/circuit/break",
                f"{url}/v1/circuit/reset",
                f"{url}/admin/flush",
            ]
