"""The scrape loop: GET the app's expvar endpoint, flatten it, feed the store, adapt.

Every ``scrape.interval`` the ``Scraper`` fetches ``app.expvar_url`` (base URL, or its
host on ``expvar_port``, + ``expvar_path``; ``scrape.fetch``: bounded in time and size),
flattens it and applies ``scrape.metric_relabel_configs`` (``scrape.relabel``) before
the store sees a sample. Refused connections, timeouts, resets and 5xx/429 answers are
retried within the interval (``core.retry``), unless the target is already known down:
a dead app is probed once per interval, not hammered. A reload hands it new ``scrape``
settings for the next scrape (``reconfigure``). A success is
ingested into the store, which stales the series that vanished; a failure stales every
scrape series and is counted by reason. The target's state changes are logged
(``scrape.target_down``, ``scrape.target_up``), not every failure.

Reading Go's /debug/vars is not free for the app: it stops the world for
``runtime.ReadMemStats`` and renders every expvar map. When a scrape costs more than
``scrape.cost_fraction`` of the interval, or the body passes ``scrape.soft_body_bytes``,
the effective interval doubles (up to ``scrape.max_interval``); after three scrapes cheap
enough for half the interval it halves again, down to ``scrape.interval``.

An app restart is told to ``on_restart`` (the supervisor wires the reconciler there; the
scraper knows nothing of actions): the target coming back up after it was down, or one
of memstats' counters (``TotalAlloc``, ``Mallocs``, ``NumGC``) going down
between two scrapes, which only a new process does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

import aiohttp
import msgspec
import structlog
from prometheus_client import CollectorRegistry
from tenacity import AsyncRetrying, RetryCallState

from sidecar.core.config import Config, ScrapeConfig
from sidecar.core.config_fields import RetryConfig
from sidecar.core.errors import ScrapeError, ScrapeTransient, clip
from sidecar.core.loops import Sleep, pause
from sidecar.core.model import LabelSet, MetricMeta, ScrapeFacts, Snapshot, labelset
from sidecar.core.outbound import Outbound
from sidecar.core.retry import retrying
from sidecar.core.times import now_ms
from sidecar.scrape.fetch import ERROR_REASONS, BodyTooLarge, fetch
from sidecar.scrape.flatten import Flattened, flatten
from sidecar.scrape.metrics import ScrapeMetrics
from sidecar.scrape.relabel import CONFLICT, Relabeller
from sidecar.store import Store

OWN = "sidecar"
"""Store origin of the series the scraper writes about the scrape itself."""

__all__ = ["ERROR_REASONS", "Scraper"]

log = structlog.get_logger(__name__)

_INLINE_DECODE_BYTES = 64 * 1024
"""Bodies up to this size are decoded on the event loop, larger ones in a thread. Go's
default /debug/vars (about 4 KB) decodes in under 0.1 ms, a 37 KB one with a 1,500-key
map in about 0.9 ms, while the hop to a thread and back costs about 0.6 ms: more than
the whole decode of the default payload (bench/table.py). A 20 MB body still goes to a
thread, so that it cannot stall webhooks."""

# Scrapes this cheap in a row before the interval steps back down: no flapping.
_CHEAP_STREAK = 3


class Scraper:
    """Scrapes the app's expvar endpoint into ``store``; ``run`` loops until stopped.

    ``session`` is the process's one ``aiohttp.ClientSession``; the scraper never closes it.
    ``clock`` gives wall time for sample timestamps, ``monotonic`` measures durations,
    ``sleep`` waits between scrapes and between retries (tests pass recording fakes).
    ``constants`` are series written with every scrape beside the sidecar's own (e.g.
    the app's memory limit), so that embedded rules see them as Prometheus would.
    ``outbound`` carries ``app.http_config`` (the process's one, shared with the actions).
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        session: aiohttp.ClientSession,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        constants: Mapping[LabelSet, float] | None = None,
        outbound: Outbound | None = None,
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        self.on_restart = on_restart
        """Told (with a reason) when the app restarted; set after construction by wiring."""
        self._cfg = config.scrape
        self._outbound = outbound or Outbound(config.app.http_config)
        self._constants = dict(constants or {})
        self._store = store
        self._session = session
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self.url = config.app.expvar_url
        self.interval: float = self._cfg.interval
        """The effective interval, stretched while scrapes are costly."""
        self.snapshot: Snapshot | None = None
        """The last successful scrape."""
        self.last = ScrapeFacts(url=self.url, interval_s=self.interval)
        self.timeout_s = self._cfg.timeout
        self._cheap = 0
        self._attempt_s = 0.0
        self._seen_bytes: int | None = None
        self._warnings: tuple[str, ...] = ()
        # The retry policy and the terms it was built for: one scrape at a time uses it.
        self._retry: tuple[tuple[RetryConfig, float, int], AsyncRetrying] | None = None
        # Compiled with the config; applied after flattening, before the store.
        self._relabel = Relabeller(self._cfg.metric_relabel_configs)
        self._m = ScrapeMetrics(registry)
        self._m.interval.set(self.interval)

    def reconfigure(self, scrape: ScrapeConfig, relabel: Relabeller) -> None:
        """Scrape with ``scrape`` (interval, timeout, caps, maps) and ``relabel`` (compiled
        from its ``metric_relabel_configs``) from the next scrape on (a reload)."""
        self._cfg = scrape
        self._relabel = relabel
        self.interval = scrape.interval
        self._m.interval.set(self.interval)
        self.timeout_s = scrape.timeout
        self._cheap = 0

    @property
    def meta(self) -> dict[str, MetricMeta]:
        """Metric metadata of the last successful scrape, for the exporter."""
        return self.snapshot.meta if self.snapshot is not None else {}

    # -- the loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Scrape every effective interval until ``stop`` is set."""
        while not stop.is_set():
            started = self._monotonic()
            try:
                await self.scrape_once()
            except ScrapeError:
                pass  # counted, logged on state change and staled by scrape_once
            except Exception as exc:  # the loop must outlive any bug
                log.exception("scrape.bug", url=self.url, error=clip(repr(exc)))
            await pause(stop, max(0.0, self.interval - (self._monotonic() - started)), self._sleep)

    async def scrape_once(self) -> Snapshot:
        """Scrape once: ingest and return the snapshot, or stale, count, raise ``ScrapeError``."""
        started = self._monotonic()
        t = now_ms(self._clock())
        self._m.scrapes.inc()
        self._attempt_s = 0.0
        self._seen_bytes = None
        try:
            body = await self._fetch()
            decode_started = self._monotonic()
            if len(body) <= _INLINE_DECODE_BYTES:
                flat = self._decode(body)
            else:
                flat = await asyncio.to_thread(self._decode, body)
            decode_s = self._monotonic() - decode_started
        except ScrapeError as exc:
            self._failed(t, started, exc)
            raise
        except Exception as exc:
            error = ScrapeError("internal", f"scrape failed unexpectedly: {clip(repr(exc))}")
            log.exception("scrape.bug", url=self.url, error=clip(repr(exc)))
            self._failed(t, started, error)
            raise error from exc
        snapshot = Snapshot(t, flat.samples, flat.meta, len(body), flat.warnings)
        self._succeeded(snapshot, flat, started, self._attempt_s + decode_s)
        return snapshot

    def _decode(self, body: bytearray) -> Flattened:
        flat = flatten(body, self._cfg)
        if not self._relabel:
            return flat
        out = self._relabel.apply(flat.samples)
        dropped = {**flat.dropped, CONFLICT: out.conflicts}
        return replace(flat, samples=out.samples, dropped=dropped)

    # -- HTTP -----------------------------------------------------------------------------

    async def _fetch(self) -> bytearray:
        async for attempt in self._retrying():
            with attempt:
                return await self._get()
        raise AssertionError("unreachable: the retry policy re-raises")  # pragma: no cover

    def _retrying(self) -> AsyncRetrying:
        """The retry policy of this scrape, built again only when its terms changed."""
        policy = self._cfg.retry
        # Retries fit in the interval: the last one can still time out before the next tick.
        budget = max(0.0, min(policy.max_elapsed, self.interval - self._cfg.timeout))
        attempts = 1 if self.last.up is False else policy.attempts
        key = (policy, budget, attempts)
        if self._retry is None or key != self._retry[0]:
            policy = msgspec.structs.replace(policy, max_elapsed=budget, attempts=attempts)
            retry = retrying(
                policy,
                (ScrapeTransient,),
                event="scrape.retry_scheduled",
                on_retry=self._on_retry,
                sleep=self._sleep,
                url=self.url,
            )
            self._retry = (key, retry)
        return self._retry[1]

    def _on_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self._m.retries.labels(exc.reason if isinstance(exc, ScrapeError) else "internal").inc()

    async def _get(self) -> bytearray:
        started = self._monotonic()
        try:
            return await fetch(
                self._session,
                self.url,
                within=self._cfg.timeout,
                limit=int(self._cfg.max_body_bytes),
                outbound=self._outbound,
            )
        except BodyTooLarge as exc:
            self._seen_bytes = exc.seen_bytes
            raise
        finally:
            self._attempt_s += self._monotonic() - started

    # -- outcomes -------------------------------------------------------------------------

    def _succeeded(self, snap: Snapshot, flat: Flattened, started: float, cost: float) -> None:
        result = self._store.ingest(snap.timestamp_ms, snap.samples)
        restarted = _restart(self.snapshot, snap, self.last.up)
        self.snapshot = snap
        duration = self._monotonic() - started
        self._m.up.set(1)
        self._m.duration.set(duration)
        self._m.body.set(snap.body_bytes)
        self._m.series.set(len(snap.samples))
        # Counted only when there is something to count: a healthy scrape has nothing.
        for reason, n in flat.collapsed.items():
            if n:
                self._m.collapsed.labels(reason).inc(n)
        if flat.collisions:
            self._m.collisions.inc(flat.collisions)
        for reason, n in flat.dropped.items():
            if n:
                self._m.dropped.labels(reason).inc(n)
        if result.refused:
            self._m.dropped.labels("store_full").inc(result.refused)
        if self.last.up is not True:
            log.info("scrape.target_up", url=self.url, series=len(snap.samples))
        if flat.warnings != self._warnings:
            if flat.warnings:
                log.warning("scrape.warnings", url=self.url, warnings=list(flat.warnings))
            self._warnings = flat.warnings
        # Every field but the URL and the interval is new (built, not replace()d: cheaper).
        self.last = ScrapeFacts(
            self.last.url,
            self.last.interval_s,
            up=True,
            time_ms=snap.timestamp_ms,
            duration_s=duration,
            body_bytes=snap.body_bytes,
            series=len(snap.samples),
        )
        self._adapt(cost, snap.body_bytes)
        self._ingest_own(snap.timestamp_ms, 1.0, duration, snap.body_bytes)
        if restarted is not None:
            log.info("scrape.target_restarted", url=self.url, reason=restarted)
            if self.on_restart is not None:
                self.on_restart(restarted)

    def _ingest_own(self, t: int, up: float, duration: float, body: int | None) -> None:
        """Write what Prometheus would see of the sidecar, so embedded rules can use it.

        Prometheus scraping the sidecar gets these as ``leak_sidecar_*`` metrics; the
        embedded engine reads the same names from the store, as Prometheus reads ``up``.
        """
        own = {
            _TARGET_UP: up,
            _SCRAPE_DURATION: duration,
            _SCRAPE_INTERVAL: self.interval,
            **self._constants,
        }
        if body is not None:
            own[_BODY_BYTES] = float(body)
        self._store.ingest(t, own, origin=OWN)

    def _failed(self, t: int, started: float, exc: ScrapeError) -> None:
        self._store.mark_stale(t)
        duration = self._monotonic() - started
        self._m.up.set(0)
        self._m.duration.set(duration)
        self._m.errors.labels(exc.reason).inc()
        if self._seen_bytes is not None:
            self._m.body.set(self._seen_bytes)
        log.debug("scrape.failed", url=self.url, reason=exc.reason, error=str(exc))
        if self.last.up is not False:
            log.warning("scrape.target_down", url=self.url, reason=exc.reason, error=str(exc))
        self.last = replace(
            self.last,
            up=False,
            time_ms=t,
            duration_s=duration,
            body_bytes=self._seen_bytes,
            reason=exc.reason,
            error=str(exc),
        )
        self._adapt(self._attempt_s, self._seen_bytes)
        self._ingest_own(t, 0.0, duration, self._seen_bytes)

    def _adapt(self, cost: float, body_bytes: int | None) -> None:
        """Stretch the interval while scrapes are costly; step back once they are cheap."""
        cfg = self._cfg
        old = self.interval
        big = body_bytes is not None and body_bytes > cfg.soft_body_bytes
        if big or cost > cfg.cost_fraction * old:
            self._cheap = 0
            new = min(old * 2, cfg.max_interval)
            reason = "body_bytes" if big else "cost"
        elif old > cfg.interval and cost <= cfg.cost_fraction * old / 4:
            # Cheap enough that half the interval would still cost at most half the budget.
            self._cheap += 1
            if self._cheap < _CHEAP_STREAK:
                return
            self._cheap = 0
            new = max(old / 2, cfg.interval)
            reason = "cheap"
        else:
            self._cheap = 0
            return
        if new == old:
            return
        self.interval = new
        self._m.interval.set(new)
        self.last = replace(self.last, interval_s=new)
        log.info(
            "scrape.interval_changed",
            url=self.url,
            old_seconds=old,
            new_seconds=new,
            reason=reason,
            cost_seconds=round(cost, 6),
            body_bytes=body_bytes,
        )


_PROCESS_COUNTERS = tuple(
    labelset({"__name__": name})
    for name in (
        "go_memstats_alloc_bytes_total",
        "go_memstats_mallocs_total",
        "go_gc_cycles_total",
    )
)
"""Counters of the Go runtime that only a new process can take back down."""


def _restart(before: Snapshot | None, now: Snapshot, was_up: bool | None) -> str | None:
    """Why ``now`` looks like a new process of the app, or None."""
    if was_up is False:
        # Down then up: most often a new process (which starts closed); when it was only
        # a network blip, the re-sent call is a repeat the app recognises.
        return "target_up_again"
    if before is None:
        return None
    for key in _PROCESS_COUNTERS:
        old, new = before.samples.get(key), now.samples.get(key)
        if old is not None and new is not None and new < old:
            return "counter_reset"
    return None


_TARGET_UP = labelset({"__name__": "leak_sidecar_target_up"})
_SCRAPE_DURATION = labelset({"__name__": "leak_sidecar_scrape_duration_seconds"})
_SCRAPE_INTERVAL = labelset({"__name__": "leak_sidecar_scrape_interval_seconds"})
_BODY_BYTES = labelset({"__name__": "leak_sidecar_scrape_body_bytes"})
