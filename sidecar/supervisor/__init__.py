"""Wires the stages together and owns every long-lived task.

One ``asyncio.TaskGroup`` holds the loops (scrape, rules, notifier, breaker timer); if
one dies the process exits non-zero, and a loop that returns while it should run
forever is logged as a bug and treated as a crash. SIGTERM only sets an event; shutdown
is staged: the loops stop, the notifier hands on what it holds, the server stops
accepting and finishes in-flight requests, running actions drain within
``actions.drain_timeout``, and the one ``ClientSession`` closes last. SIGHUP and
``POST /-/reload`` apply a new config and rules to the running stages (``reload``); the
process-wide metrics no stage owns are ``own_metrics``'.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import aiohttp
import structlog
from prometheus_client import CollectorRegistry

from sidecar.actions.journal import Journal, JournalWatch, StateDirLocked, lock_state_dir
from sidecar.actions.path import ActionPath, build_action_path
from sidecar.core import logs
from sidecar.core.config import Config
from sidecar.core.errors import ConfigError, JournalError, RuleError, SidecarError
from sidecar.core.loops import Loop, Sleep, stop_on_signals
from sidecar.core.model import Alert
from sidecar.core.outbound import Outbound, SecretReader
from sidecar.evidence.capture import Evidence
from sidecar.rules.condition import Condition
from sidecar.rules.engine import RuleEngine
from sidecar.rules.files import load_patterns, longest_range_ms, rule_patterns
from sidecar.rules.groups import RuleSet, runtime_groups
from sidecar.rules.notify import Deliver, Notifier, alertmanager_deliver
from sidecar.rules.promql import LOOKBACK_MS, native
from sidecar.scrape.export import ExpvarCollector
from sidecar.scrape.scraper import Scraper
from sidecar.store import Store
from sidecar.supervisor import own_metrics
from sidecar.supervisor.own_metrics import memory_limit
from sidecar.supervisor.reload import Reloader, Stages
from sidecar.web import actions_api, evidence_api, openapi, reload_api, rules_api, status
from sidecar.web.server import Limits, Server, TokenSource, build_app
from sidecar.web.status import StatusAdapter

__all__ = ["Sidecar", "memory_limit", "run"]

log = structlog.get_logger(__name__)


def _release_freed_heap() -> None:
    """Hand back to the kernel the heap pages that starting freed (config, rules, imports):
    glibc keeps them otherwise. 0.3 MiB in every pod once ctypes' 0.25 MiB is paid
    (bench/bench_memory.py, side by side)."""
    import ctypes  # noqa: PLC0415 -- here, so that bench_memory's "without" pays none of it

    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only; musl has none
    if trim is not None:
        trim(0)


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
        config_path: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.registry = registry if registry is not None else CollectorRegistry()
        # Built once, shared: the engine evaluates these groups; the breaker's condition,
        # the rules API and the status page read them.
        self.rules = RuleSet(
            runtime_groups(load_patterns(rule_patterns(cfg.rules.files)), cfg.rules)
        )
        self.groups = self.rules.groups
        self.memory_limit = memory_limit(cfg)
        cap_ms = round(cfg.store.max_retention * 1000)
        wanted_ms = longest_range_ms([g.spec for g in self.groups]) + LOOKBACK_MS
        if wanted_ms > cap_ms:
            log.warning("store.retention_capped", wanted_ms=wanted_ms, cap_ms=cap_ms)
        self.store = Store(
            retention_ms=min(wanted_ms, cap_ms),
            max_series=cfg.store.max_series,
            registry=self.registry,
        )
        self.reload = Reloader(
            cfg,
            self.rules,
            config_path=config_path,
            env={} if env is None else env,
            retention_ms=self.store.retention_ms,
            registry=self.registry,
            clock=clock,
        )
        """SIGHUP and POST /-/reload: re-read the config and rules and apply them."""
        self.started = asyncio.Event()
        self.server: Server | None = None
        """The HTTP server, once ``run`` has built it."""
        self.port: int | None = None
        self._ready = False
        self._journal: Journal | None = None
        self._tasks: list[asyncio.Task[None]] = []
        own_metrics.register(self.registry, self.store, self.memory_limit)

    def _health(self) -> tuple[bool, str]:
        dead = [t.get_name() for t in self._tasks if t.done()]
        if dead:
            return False, "stopped: " + ", ".join(dead)
        return True, "loops running"

    def _readiness(self) -> tuple[bool, str]:
        if not self._ready:
            return False, "starting"
        rules = sum(len(g.spec.rules) for g in self.groups)
        if rules == 0 and self.reload.cfg.rules.files != []:
            # Only `rules.files: []` says "no embedded rules" (fleet mode): anything else
            # evaluating nothing is a sidecar protecting nothing, and must not look ready.
            return False, "no rules loaded: rules.files matched no rule (fleet mode says [])"
        loaded = f"config and {len(self.groups)} rule groups loaded, listening"
        problem = self._journal.problem if self._journal is not None else None
        if problem is not None:
            # Still ready: a full state volume must not take the app's pod out of its
            # Service. It says so here, and leak_sidecar_journal_writable is 0.
            return True, f"degraded, actions refused: {problem}; {loaded}"
        return True, loaded

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; raises if a loop dies."""
        # The running config: a reload before the start has already been applied to it.
        cfg = self.reload.cfg
        token = _token_source(cfg)
        # First, before anything is built: a second sidecar on this directory stops here.
        state_lock = lock_state_dir(cfg.state_dir)
        # One session for the process; every request sets its own, tighter timeout.
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=max(cfg.scrape.timeout, cfg.actions.timeout) * 4)
        )
        # One for every call to the app: credentials and TLS, never on the session itself,
        # which also talks to Alertmanager.
        outbound = Outbound(cfg.app.http_config)
        scraper = Scraper(
            cfg,
            self.store,
            session,
            self.registry,
            clock=self.clock,
            monotonic=self.monotonic,
            sleep=self.sleep,
            constants=own_metrics.limit_series(self.memory_limit),
            outbound=outbound,
            # The scrape stage sees an app restart; the reconciler re-sends what it lost.
            # Bound to the path built below (the path's condition reads this scraper);
            # no scrape runs before the loops start.
            on_restart=lambda reason: path.app_restarted(reason),  # noqa: PLW0108 -- bound late
        )
        self.registry.register(ExpvarCollector(self.store, lambda: scraper.meta))
        groups = self.groups
        condition = Condition(scraper, self.store, groups, clock=self.clock)
        evidence = Evidence(
            cfg.evidence,
            state_dir=cfg.state_dir,
            session=session,
            registry=self.registry,
            vars_url=cfg.app.expvar_url,
            outbound=outbound,
            # A stretched scrape interval is the sign that the app is struggling.
            struggling=lambda: scraper.interval > self.reload.cfg.scrape.interval,
            # The router, whichever a reload put there last: bound late.
            asks=lambda labels: path.dispatcher.router.asks_evidence(labels),  # noqa: PLW0108
            clock=self.clock,
            monotonic=self.monotonic,
            sleep=self.sleep,
        )
        path = build_action_path(
            cfg,
            session=session,
            registry=self.registry,
            view=condition,
            clock=self.clock,
            outbound=outbound,
            tag=evidence.tag,
            token=token,
        )
        notifier = Notifier(
            self._deliver(cfg, path, session),
            self.registry,
            destination="alertmanager" if cfg.rules.alertmanager_url else "receiver",
            retry=cfg.actions.retry,
            sleep=self.sleep,
        )

        async def send(alerts: Sequence[Alert]) -> None:
            # Tagged before the notifier: Alertmanager and the receiver both see the link.
            await notifier.send(evidence.tag(alerts))

        engine = RuleEngine(
            self.rules,
            self.store,
            cfg.rules,
            registry=self.registry,
            send=send,
            state_dir=cfg.state_dir,
            clock=self.clock,
            monotonic=self.monotonic,
            sleep=self.sleep,
        )
        # From here a reload applies every key it can to these stages, not only the rules.
        self.reload.stages = Stages(outbound, scraper, engine, notifier, path)
        source = StatusAdapter(scraper, groups, path, self.store, clock=self.clock)
        server = Server(
            build_app(
                registry=self.registry,
                token=token,
                max_body_bytes=int(cfg.server.max_body_bytes),
                limits=Limits(
                    header_timeout=cfg.server.header_timeout,
                    body_timeout=cfg.server.body_timeout,
                    max_connections=cfg.server.max_connections,
                ),
                health=self._health,
                ready=self._readiness,
                routes=[
                    *actions_api.path_routes(path, self.registry),
                    *rules_api.routes(groups),
                    *reload_api.routes(self.reload),
                    *status.routes(source),
                    *evidence_api.routes(evidence, token=token),
                    *openapi.routes(auth=token is not None),
                ],
            ),
            shutdown_grace=cfg.server.shutdown_grace,
        )
        self.server = server
        self._journal = path.journal
        loops: dict[str, Loop] = {
            "journal": JournalWatch(path.journal, cfg.breaker.check_interval),
            "scrape": scraper,
            "rules": engine,
            "notify": notifier,
            "breaker": path,
            "evidence": evidence,
        }
        try:
            await path.start()
            # What starting made (modules, config, rules) lives as long as the process: out
            # of the collector's full passes, which otherwise stall every request in
            # flight for tens of milliseconds (bench/bench_webhook.py).
            gc.collect()
            gc.freeze()
            _release_freed_heap()
            self.port = await server.start(cfg.server.listen)
            self._ready = True
            self.started.set()
            host = cfg.server.listen.rpartition(":")[0]
            log.info(
                "sidecar.started",
                listen=f"{host}:{self.port}",
                rule_groups=len(groups),
                # "python": this install built no C kernels, and the rules cost more.
                range_kernels=native.range_kernels(),
            )
            async with asyncio.TaskGroup() as tg:
                self._tasks = [
                    tg.create_task(_guard(name, loop, stop), name=name)
                    for name, loop in loops.items()
                ]
        finally:
            self._ready = False
            await asyncio.shield(_shutdown(server, path, session))
            if state_lock is not None:
                os.close(state_lock)
            log.info("sidecar.stopped")

    def _deliver(self, cfg: Config, path: ActionPath, session: aiohttp.ClientSession) -> Deliver:
        url = cfg.rules.alertmanager_url
        if url is not None:
            # The running config's timeout: a reload of actions.timeout applies here too.
            return alertmanager_deliver(
                session, url, timeout=lambda: self.reload.cfg.actions.timeout
            )

        async def in_process(alerts: Sequence[Alert]) -> None:
            await path.receiver.deliver(list(alerts), "rules")

        return in_process


def _token_source(cfg: Config) -> TokenSource:
    """The bearer token: a token file is re-read when it changes (a mounted Secret is
    updated in place), so that a rotation needs no restart; env's is fixed. It guards
    every request: a stat each, a read only on a change or once a second."""
    token = cfg.token.get_secret_value() if cfg.token else None
    if cfg.server.token_file is None or token is None:
        return lambda: token
    reader = SecretReader(cfg.server.token_file, "server.token_file", initial=token, max_age=1.0)
    return reader.current


async def _guard(name: str, loop: Loop, stop: asyncio.Event) -> None:
    """A loop meant to run until stopped that returns early is a bug: make it a crash."""
    await loop.run(stop)
    if not stop.is_set():
        log.error("sidecar.loop_returned", loop=name)
        raise SidecarError(f"the {name} loop returned while the sidecar was running")


async def _shutdown(server: Server, path: ActionPath, session: aiohttp.ClientSession) -> None:
    # Stop accepting first, so nothing new is acknowledged; then let running calls finish.
    await server.stop()
    await path.close()
    await session.close()


def run(cfg: Config, config_path: Path | None = None, env: Mapping[str, str] | None = None) -> int:
    """``leak-sidecar run``: until SIGTERM or SIGINT; 0 on a clean stop, 1 on a crash,
    2 when the rules or the memory limit file are invalid, another sidecar holds the
    state directory, or its journal cannot be read."""
    logs.configure(cfg.log.format, cfg.log.level)
    try:
        sidecar = Sidecar(cfg, config_path=config_path, env=env)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    except RuleError as exc:
        print(exc, file=sys.stderr)
        return 2

    async def main() -> None:
        # Prometheus's habit: HUP reloads (the outcome is logged), it never stops the sidecar.
        await sidecar.run(stop_on_signals(hup=sidecar.reload))

    crashed = locked = False
    try:
        asyncio.run(main())
    except* StateDirLocked as held:
        # A configuration problem, not a crash: restarting cannot cure it.
        locked = True
        for refusal in held.exceptions:
            print(refusal, file=sys.stderr)
    except* JournalError as unreadable:
        # Only the replay at start raises it out of here (a failed write is answered 503
        # and retried). The journal holds what was decided: starting without it would drop
        # those protections, so an operator has to look, as for a locked state directory.
        locked = True
        for failed in unreadable.exceptions:
            print(f"state_dir: {failed}; fix or move it away", file=sys.stderr)
    except* ConfigError as refused:
        # The listen address is busy or not this host's: a key: problem line, exit 2.
        locked = True
        for bad in refused.exceptions:
            assert isinstance(bad, ConfigError)
            for line in bad.problems:
                print(line, file=sys.stderr)
    except* Exception as group:
        crashed = True
        for err in group.exceptions:
            log.exception("sidecar.crashed", error=repr(err), exc_info=err)
    if locked:
        return 2
    return 1 if crashed else 0
