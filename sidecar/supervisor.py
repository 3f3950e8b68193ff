"""Wires the stages together and owns every long-lived task.

One ``asyncio.TaskGroup`` holds the loops (scrape, rules, breaker) and the HTTP server;
if one dies the process exits non-zero, and a loop that returns while it should run
forever is logged as a bug. SIGTERM only sets an event; shutdown is staged: stop
accepting requests, drain in-flight webhooks and actions within ``server.shutdown_grace``,
close the one ``ClientSession``.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from sidecar import logs
from sidecar.config import Config
from sidecar.export import ExpvarCollector
from sidecar.model import MetricMeta
from sidecar.server import build_app
from sidecar.store import Store

__all__ = ["LOOKBACK_MS", "Sidecar", "run"]

log = structlog.get_logger(__name__)

LOOKBACK_MS = 300_000
"""Prometheus's default lookback delta, kept in the store on top of the longest range."""


class Sidecar:
    """The whole sidecar for one config: build with the config, then ``await run(stop)``."""

    def __init__(
        self,
        cfg: Config,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.registry = registry if registry is not None else CollectorRegistry()
        retention_ms = min(LOOKBACK_MS, round(cfg.store.max_retention * 1000))  # no rules yet
        self.store = Store(retention_ms=retention_ms, max_series=cfg.store.max_series)
        self._meta: dict[str, MetricMeta] = {}
        self.registry.register(ExpvarCollector(self.store, lambda: self._meta))
        self.started = asyncio.Event()
        self.port: int | None = None
        self._ready = False

    def _health(self) -> tuple[bool, str]:
        return True, "running"

    def _readiness(self) -> tuple[bool, str]:
        return (True, "config loaded, listening") if self._ready else (False, "starting")

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; raises if a task dies."""
        host, _, port = self.cfg.server.listen.rpartition(":")
        token = self.cfg.token.get_secret_value() if self.cfg.token else None
        app = build_app(
            registry=self.registry,
            token=token,
            max_body_bytes=int(self.cfg.server.max_body_bytes),
            health=self._health,
            ready=self._readiness,
        )
        runner = web.AppRunner(
            app, handle_signals=False, shutdown_timeout=self.cfg.server.shutdown_grace
        )
        await runner.setup()
        timeout = aiohttp.ClientTimeout(
            total=max(self.cfg.scrape.timeout, self.cfg.actions.timeout)
        )
        session = aiohttp.ClientSession(timeout=timeout)
        try:
            site = web.TCPSite(runner, host.strip("[]"), int(port))
            await site.start()
            self.port = _bound_port(runner)
            self._ready = True
            self.started.set()
            log.info("sidecar.started", listen=f"{host}:{self.port}")
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_forever("wait_for_stop", stop.wait), name="wait_for_stop")
        finally:
            self._ready = False
            await asyncio.shield(_close(runner, session))
            log.info("sidecar.stopped")


async def _close(runner: web.AppRunner, session: aiohttp.ClientSession) -> None:
    await runner.cleanup()
    await session.close()


async def _forever(name: str, loop: Callable[[], Awaitable[Any]]) -> None:
    await loop()


def _bound_port(runner: web.AppRunner) -> int:
    for addr in runner.addresses:
        if isinstance(addr, tuple):
            return int(addr[1])
    raise RuntimeError("the server is not listening on a TCP address")


def run(cfg: Config) -> int:
    """``leak-sidecar run``: run until SIGTERM or SIGINT; 0 on a clean stop, 1 on a crash."""
    logs.configure(cfg.log.format, cfg.log.level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Sidecar(cfg).run(stop)

    crashed = False
    try:
        asyncio.run(main())
    except* Exception as group:
        crashed = True
        for exc in group.exceptions:
            log.exception("sidecar.crashed", error=repr(exc), exc_info=exc)
    return 1 if crashed else 0
