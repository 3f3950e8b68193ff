"""Wires the stages together and owns every long-lived task.

One ``asyncio.TaskGroup`` holds the loops (scrape, rules, notifier, breaker timer); if
one dies the process exits non-zero, and a loop that returns while it should run
forever is logged as a bug and treated as a crash. SIGTERM only sets an event; shutdown
is staged: the loops stop, the notifier hands on what it holds, the server stops
accepting and finishes in-flight requests, running actions drain within
``actions.drain_timeout``, and the one ``ClientSession`` closes last.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from sidecar import logs, rules_api, status
from sidecar.action_path import ActionPath, build_action_path
from sidecar.config import Config
from sidecar.errors import ConfigError, RuleError, SidecarError
from sidecar.export import ExpvarCollector
from sidecar.model import Alert, LabelSet, labelset
from sidecar.notify import Deliver, Notifier, alertmanager_deliver
from sidecar.promql import LOOKBACK_MS
from sidecar.rulefile import load_patterns, longest_range_ms
from sidecar.rules import RuleEngine
from sidecar.scrape import Scraper
from sidecar.server import build_app
from sidecar.store import Store
from sidecar.view import Condition, StatusAdapter

__all__ = ["Sidecar", "memory_limit", "run"]

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]

MEMORY_LIMIT = "leak_sidecar_app_memory_limit_bytes"


def memory_limit(cfg: Config) -> int | None:
    """The app container's memory limit from config or its Downward API file."""
    if cfg.app.memory_limit_bytes is not None:
        return cfg.app.memory_limit_bytes
    path = cfg.app.memory_limit_file
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError([f"app.memory_limit_file: cannot read {path}: {exc.strerror}"]) from exc
    if not text.isdigit() or int(text) == 0:
        problem = f"expected a positive number of bytes in {path}, got {text[:40]!r}"
        raise ConfigError([f"app.memory_limit_file: {problem}"])
    return int(text)


class Sidecar:
    """The whole sidecar for one config: build it, then ``await run(stop)``.

    ``clock`` (wall time), ``monotonic`` and ``sleep`` reach every stage, so that a test
    or the demo can run the whole sidecar on compressed time.
    """

    def __init__(
        self,
        cfg: Config,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.registry = registry if registry is not None else CollectorRegistry()
        self.groups = load_patterns(cfg.rules.files)
        self.memory_limit = memory_limit(cfg)
        cap_ms = round(cfg.store.max_retention * 1000)
        wanted_ms = longest_range_ms(self.groups) + LOOKBACK_MS
        if wanted_ms > cap_ms:
            log.warning("store.retention_capped", wanted_ms=wanted_ms, cap_ms=cap_ms)
        self.store = Store(retention_ms=min(wanted_ms, cap_ms), max_series=cfg.store.max_series)
        self.started = asyncio.Event()
        self.app: web.Application | None = None
        """The HTTP application, once ``run`` has built it."""
        self.port: int | None = None
        self._ready = False
        self._tasks: list[asyncio.Task[None]] = []
        Gauge(
            "leak_sidecar_store_retention_seconds",
            "History kept per series: the longest rule range plus the 5m lookback, capped.",
            registry=self.registry,
        ).set(self.store.retention_ms / 1000)
        Gauge(
            "leak_sidecar_store_series",
            "Series held in the store: scraped, recorded and the sidecar's own.",
            registry=self.registry,
        ).set_function(lambda: len(self.store))
        if self.memory_limit is not None:
            Gauge(
                MEMORY_LIMIT,
                "The app container's memory limit, from config or the Downward API.",
                registry=self.registry,
            ).set(self.memory_limit)

    def _health(self) -> tuple[bool, str]:
        dead = [t.get_name() for t in self._tasks if t.done()]
        if dead:
            return False, "stopped: " + ", ".join(dead)
        return True, "loops running"

    def _readiness(self) -> tuple[bool, str]:
        if self._ready:
            return True, f"config and {len(self.groups)} rule groups loaded, listening"
        return False, "starting"

    def _constants(self) -> dict[LabelSet, float]:
        if self.memory_limit is None:
            return {}
        return {labelset({"__name__": MEMORY_LIMIT}): float(self.memory_limit)}

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; raises if a loop dies."""
        cfg = self.cfg
        token = cfg.token.get_secret_value() if cfg.token else None
        # One session for the process; every request sets its own, tighter timeout.
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=max(cfg.scrape.timeout, cfg.actions.timeout) * 4)
        )
        scraper = Scraper(
            cfg,
            self.store,
            session,
            self.registry,
            clock=self.clock,
            monotonic=self.monotonic,
            sleep=self.sleep,
            constants=self._constants(),
        )
        self.registry.register(ExpvarCollector(self.store, lambda: scraper.meta))
        condition = Condition(scraper, self.store, clock=self.clock)
        path = build_action_path(
            cfg, session=session, registry=self.registry, view=condition, clock=self.clock
        )
        notifier = Notifier(
            self._deliver(path, session),
            self.registry,
            destination="alertmanager" if cfg.rules.alertmanager_url else "receiver",
            retry=cfg.actions.retry,
            sleep=self.sleep,
        )
        engine = RuleEngine(
            self.groups,
            self.store,
            cfg.rules,
            registry=self.registry,
            send=notifier.send,
            state_dir=cfg.state_dir,
            clock=self.clock,
            monotonic=self.monotonic,
            sleep=self.sleep,
        )
        condition.engine = engine
        source = StatusAdapter(scraper, engine, path, self.store, clock=self.clock)
        app = build_app(
            registry=self.registry,
            token=token,
            max_body_bytes=int(cfg.server.max_body_bytes),
            health=self._health,
            ready=self._readiness,
            routes=[*path.routes(), *rules_api.routes(engine), *status.routes(source)],
        )
        self.app = app
        runner = web.AppRunner(
            app, handle_signals=False, shutdown_timeout=cfg.server.shutdown_grace
        )
        try:
            await path.start()
            await runner.setup()
            host, _, port = cfg.server.listen.rpartition(":")
            await web.TCPSite(runner, host.strip("[]"), int(port)).start()
            self.port = _bound_port(runner)
            self._ready = True
            self.started.set()
            log.info("sidecar.started", listen=f"{host}:{self.port}", rule_groups=len(self.groups))
            async with asyncio.TaskGroup() as tg:
                self._tasks = [
                    tg.create_task(_guard("scrape", scraper.run(stop), stop), name="scrape"),
                    tg.create_task(_guard("rules", _until(engine.run(), stop), stop), name="rules"),
                    tg.create_task(_guard("notify", notifier.run(stop), stop), name="notify"),
                    tg.create_task(_guard("breaker", path.run(stop), stop), name="breaker"),
                ]
        finally:
            self._ready = False
            await asyncio.shield(_shutdown(runner, path, session))
            log.info("sidecar.stopped")

    def _deliver(self, path: ActionPath, session: aiohttp.ClientSession) -> Deliver:
        url = self.cfg.rules.alertmanager_url
        if url is not None:
            return alertmanager_deliver(session, url, timeout=self.cfg.actions.timeout)

        async def in_process(alerts: Sequence[Alert]) -> None:
            await path.receiver.deliver(list(alerts), "rules")

        return in_process


async def _until(loop: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    """Run a loop that has no stop event of its own until ``stop`` is set."""
    task = asyncio.ensure_future(loop)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return
    task.result()


async def _guard(name: str, loop: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    """A loop meant to run until stopped that returns early is a bug: make it a crash."""
    await loop
    if not stop.is_set():
        log.error("sidecar.loop_returned", loop=name)
        raise SidecarError(f"the {name} loop returned while the sidecar was running")


async def _shutdown(
    runner: web.AppRunner, path: ActionPath, session: aiohttp.ClientSession
) -> None:
    # Stop accepting first, so nothing new is acknowledged; then let running calls finish.
    await runner.cleanup()
    await path.close()
    await session.close()


def _bound_port(runner: web.AppRunner) -> int:
    for addr in runner.addresses:
        if isinstance(addr, tuple):
            return int(addr[1])
    raise RuntimeError("the server is not listening on a TCP address")


def run(cfg: Config) -> int:
    """``leak-sidecar run``: until SIGTERM or SIGINT; 0 on a clean stop, 1 on a crash,
    2 when the rules or the memory limit file are invalid."""
    logs.configure(cfg.log.format, cfg.log.level)
    try:
        sidecar = Sidecar(cfg)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    except RuleError as exc:
        print(exc, file=sys.stderr)
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await sidecar.run(stop)

    crashed = False
    try:
        asyncio.run(main())
    except* Exception as group:
        crashed = True
        for err in group.exceptions:
            log.exception("sidecar.crashed", error=repr(err), exc_info=err)
    return 1 if crashed else 0
