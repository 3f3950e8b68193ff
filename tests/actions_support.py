"""Helpers for the action-path tests: config, a settable clock and view, the demo app, payloads."""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import itertools
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from sidecar.actions.action import Action
from sidecar.actions.path import ActionPath, build_action_path
from sidecar.core import durable
from sidecar.core.config import Config
from sidecar.core.model import Alert, fingerprint
from sidecar.demo.app import DemoApp, Fault, serve
from sidecar.web import actions_api
from sidecar.web.server import build_app

TOKEN = "s3cret-token-value"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = 1_700_000_000.0
"""The fake clock's start (seconds)."""
STARTS = "2023-11-14T22:00:00Z"


class Clock:
    """A settable ``time.time``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


@dataclass
class View:
    """A ``ConditionView`` whose answer per alertname the test sets (default: cleared)."""

    stale: set[str] = field(default_factory=set)
    asked: list[str] = field(default_factory=list)

    def cleared(self, alert: Alert) -> bool:
        name = alert.labels.get("alertname", "")
        self.asked.append(name)
        return name not in self.stale


@dataclass
class Sleeps:
    """An injected ``asyncio.sleep`` that records and returns at once."""

    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


async def until(predicate: Callable[[], bool], within: float = 20.0) -> None:
    """Wait (bounded) until ``predicate()`` holds, polling."""
    async with asyncio.timeout(within):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.02)


def journal_entries(path: Path) -> list[dict[str, Any]]:
    """The entries of a journal file, in order (blank lines skipped)."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def config(state_dir: Path, base_url: str, **sections: Any) -> Config:
    """A loopback config for tests; ``sections`` override whole config sections."""
    raw: dict[str, Any] = {
        "app": {"base_url": base_url},
        "server": {"listen": "127.0.0.1:0"},
        "state_dir": str(state_dir),
        "actions": {
            "timeout": "1s",
            "retry": {
                "attempts": 3,
                "initial_backoff": "100ms",
                "max_backoff": "1s",
                "max_elapsed": "30s",
            },
        },
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return Config.validate(raw)


def ids() -> Iterator[str]:
    """Predictable action ids: a-1, a-2, ..."""
    return (f"a-{i}" for i in itertools.count(1))


@asynccontextmanager
async def demo_app(demo: DemoApp | None = None) -> AsyncIterator[tuple[DemoApp, str]]:
    """The demo target on 127.0.0.1, a free port; yields it and its base URL."""
    demo = demo if demo is not None else DemoApp()
    runner = await serve("127.0.0.1", 0, demo)
    try:
        port = runner.addresses[0][1]
        yield demo, f"http://127.0.0.1:{port}"
    finally:
        await asyncio.shield(runner.cleanup())


@dataclass
class Rig:
    """A sidecar's action path served over HTTP, its target app, clock and view."""

    path: ActionPath
    client: TestClient[web.Request, web.Application]
    demo: DemoApp
    clock: Clock
    view: View
    sleeps: Sleeps
    registry: CollectorRegistry

    async def settle(self) -> None:
        """Wait (bounded) until every started call has finished."""
        await self.path.dispatcher.drain(10.0)

    def calls(self, path: str | None = None) -> list[Any]:
        """Calls the app received, on ``path`` when given."""
        return [c for c in self.demo.calls if path is None or c.path == path]

    def metric(self, name: str, **labels: str) -> float | None:
        """A sample's value from the registry."""
        return self.registry.get_sample_value(name, labels)

    async def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        """POST JSON with the token; returns (status, decoded body)."""
        resp = await self.client.post(path, json=body, headers=AUTH if headers is None else headers)
        return resp.status, await resp.json()

    async def in_flight(self, app_path: str, path: str, body: Any) -> None:
        """POST ``body`` to ``path`` while the app sits on its next call to ``app_path`` (30 s);
        returns once that call is in flight."""
        self.demo.faults.add(Fault(path=app_path, delay=30, times=1))
        await self.post(path, body)
        await asyncio.sleep(0.1)


@asynccontextmanager
async def rig(
    tmp_path: Path,
    registry: CollectorRegistry,
    *,
    demo: DemoApp | None = None,
    real_time: bool = False,
    **sections: Any,
) -> AsyncIterator[Rig]:
    """A full action path behind ``build_app`` (token on), against the demo app.

    Time is fake (a settable clock, instant retry sleeps) unless ``real_time``.
    """
    async with demo_app(demo) as (app, base_url), aiohttp.ClientSession() as session:
        cfg = config(tmp_path / "state", base_url, **sections)
        clock, view, sleeps = Clock(), View(), Sleeps()
        id_source = ids()
        path = build_action_path(
            cfg,
            session=session,
            registry=registry,
            view=view,
            clock=time.time if real_time else clock,
            sleep=asyncio.sleep if real_time else sleeps,
            random=lambda: 0.5,
            new_id=lambda: next(id_source),
        )
        await path.start()
        server_app = build_app(
            registry=registry,
            token=TOKEN,
            max_body_bytes=int(cfg.server.max_body_bytes),
            health=lambda: (True, "running"),
            ready=lambda: (True, "ready"),
            routes=actions_api.path_routes(path, registry),
        )
        async with TestClient(TestServer(server_app, host="127.0.0.1")) as client:
            try:
                yield Rig(path, client, app, clock, view, sleeps, registry)
            finally:
                await path.close()


def alert(
    name: str = "CacheGrowing",
    status: str = "firing",
    starts: str = STARTS,
    fingerprint: str | None = None,
    **labels: str,
) -> dict[str, Any]:
    """One alert in Alertmanager's webhook shape."""
    out: dict[str, Any] = {
        "status": status,
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} is {status}"},
        "startsAt": starts,
        "endsAt": "2023-11-14T23:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
    }
    if fingerprint is not None:
        out["fingerprint"] = fingerprint
    return out


def webhook(*alerts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An Alertmanager version-4 notification carrying ``alerts``."""
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": '{}:{alertname="CacheGrowing"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "leak-sidecar",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
        **extra,
    }


def firing_action(action_id: str, labels: dict[str, str]) -> Action:
    """A circuit_break action from Alertmanager carrying one firing alert with ``labels``."""
    return Action(
        id=action_id,
        kind="circuit_break",
        reason="alert PoolSaturated firing",
        source="alertmanager",
        alerts=(
            Alert(
                "firing",
                labels,
                {},
                dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                fingerprint=fingerprint(labels),
            ),
        ),
        created_ms=1,
    )


class Disk:
    """``append_durably`` that can hold a commit on the disk, and fail the next one."""

    def __init__(self) -> None:
        self.real = durable.append_durably
        self.entered = threading.Event()
        self.release = threading.Event()
        self.hold_call = 0
        """The number of the call held until ``release`` (0: none)."""
        self.fail_call = 0
        """The number of the call that fails (0: none)."""
        self.calls = 0

    def __call__(self, fd: int, data: bytes) -> None:
        self.calls += 1
        if self.calls == self.hold_call:
            self.entered.set()
            self.release.wait(10)
        if self.calls == self.fail_call:
            # The bytes are written, the fsync fails: all of it must be taken back.
            os.write(fd, data)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        self.real(fd, data)
