"""The scrape loop against real aiohttp servers on loopback: fetch, retries, caps, adapting."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from conftest import free_port
from prometheus_client import CollectorRegistry

from sidecar.core.config import Config
from sidecar.core.errors import ScrapeError
from sidecar.core.model import is_stale, labelset
from sidecar.scrape import scraper as scrape_module
from sidecar.scrape.flatten import flatten
from sidecar.scrape.scraper import Scraper
from sidecar.store import Store

GO_VARS = (Path(__file__).parent / "fixtures" / "goapp" / "vars.json").read_bytes()

Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]


def ok(body: bytes = GO_VARS) -> Reply:
    async def reply(_: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type="application/json")

    return reply


def status(code: int) -> Reply:
    async def reply(_: web.Request) -> web.StreamResponse:
        return web.Response(status=code, text="nope")

    return reply


def chunked(body: bytes, chunk: int = 1 << 20) -> Reply:
    """Stream ``body`` without a Content-Length, as Go does for large answers."""

    async def reply(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(body), chunk):
            await resp.write(body[i : i + chunk])
        await resp.write_eof()
        return resp

    return reply


def trickle(every: float = 0.05) -> Reply:
    """Send one byte at a time, for far longer than any scrape timeout."""

    async def reply(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b"{")
        for _ in range(200):
            await asyncio.sleep(every)
            await resp.write(b" ")
        await resp.write(b"}")
        return resp

    return reply


class Target:
    """A fake Go app: answers /debug/vars with queued replies, then with ``default``."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.default: Reply = ok()
        self.requests = 0
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        reply = self.replies.pop(0) if self.replies else self.default
        return await reply(request)


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    t = Target()
    app = web.Application()
    app.router.add_get("/debug/vars", t.handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    t.port = runner.addresses[0][1]
    yield t
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


class Sleeps:
    """A recording ``sleep`` that returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await asyncio.sleep(0)


class Rig:
    def __init__(
        self,
        port: int,
        session: aiohttp.ClientSession,
        registry: CollectorRegistry,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        store_series: int = 20000,
        constants: dict[tuple[tuple[str, str], ...], float] | None = None,
        **scrape: Any,
    ) -> None:
        self.cfg = Config.validate(
            {
                "app": {"base_url": f"http://127.0.0.1:{port}"},
                "scrape": scrape,
                "server": {"listen": "127.0.0.1:9120"},
            }
        )
        self.store = Store(retention_ms=3_600_000, max_series=store_series)
        self.sleeps = Sleeps()
        self.registry = registry
        clock = itertools.count(1_700_000_000, 15)
        self.scraper = Scraper(
            self.cfg,
            self.store,
            session,
            registry,
            clock=lambda: float(next(clock)),
            monotonic=monotonic,
            sleep=sleep or self.sleeps,
            constants=constants,
        )

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    async def fail(self) -> ScrapeError:
        with pytest.raises(ScrapeError) as info:
            await self.scraper.scrape_once()
        return info.value


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    with structlog.testing.capture_logs() as events:
        yield events


def events(logs: Sequence[Mapping[str, Any]], prefix: str = "scrape.") -> list[str]:
    return [e["event"] for e in logs if e["event"].startswith(prefix)]


@pytest.fixture(scope="module")
def big() -> bytes:
    """The real Go body with one more expvar.Map of 500k Ints (20 MB), in Go's Map format."""
    entries = ", ".join(
        f'"session-{i:012d}-eu-west-1": {i * 7919 % 100003}' for i in range(500_000)
    )
    return GO_VARS.replace(b'"requests":', b'"sessions": {' + entries.encode() + b'},\n"requests":')


# -- success --------------------------------------------------------------------------------


async def test_own_series_reach_the_store_for_embedded_rules(
    target: Target, session: aiohttp.ClientSession, registry: CollectorRegistry
) -> None:
    """Each scrape writes target_up, its duration, interval, body size and the constants."""
    limit = labelset({"__name__": "leak_sidecar_app_memory_limit_bytes"})
    up = labelset({"__name__": "leak_sidecar_target_up"})
    duration = labelset({"__name__": "leak_sidecar_scrape_duration_seconds"})
    interval = labelset({"__name__": "leak_sidecar_scrape_interval_seconds"})
    rig = Rig(target.port, session, registry, constants={limit: 2147483648.0})
    await rig.scraper.scrape_once()
    took = rig.scraper.last.duration_s
    assert took is not None
    assert took > 0
    assert dict(rig.store.latest(origin="sidecar")) == {
        up: 1.0,
        duration: took,
        interval: 15.0,
        labelset({"__name__": "leak_sidecar_scrape_body_bytes"}): float(len(GO_VARS)),
        limit: 2147483648.0,
    }
    target.default = status(500)
    await rig.fail()
    # No body was read: the body size series ends instead of repeating the last one.
    assert dict(rig.store.latest(origin="sidecar")) == {
        up: 0.0,
        duration: rig.scraper.last.duration_s,
        interval: 15.0,
        limit: 2147483648.0,
    }
    # The sidecar's own view stays out of the app's exported series.
    assert labelset({"__name__": "leak_sidecar_target_up"}) not in dict(rig.store.latest())


async def test_success_ingests_the_snapshot(
    target: Target, session: aiohttp.ClientSession, registry: CollectorRegistry
) -> None:
    """A scrape ingests every sample at the scrape's start time and exposes meta and facts."""
    rig = Rig(target.port, session, registry)
    snap = await rig.scraper.scrape_once()
    expected = flatten(GO_VARS, rig.cfg.scrape)
    assert snap.samples == expected.samples
    assert snap.meta == expected.meta
    assert rig.scraper.meta is snap.meta
    assert snap.timestamp_ms == 1_700_000_000_000
    assert snap.body_bytes == len(GO_VARS)
    series = rig.store.get(labelset({"__name__": "requests"}))
    assert series is not None
    assert series.last() == (1_700_000_000_000, 1234.0)
    assert rig.value("leak_sidecar_target_up") == 1.0
    assert rig.value("leak_sidecar_series") == 56.0
    assert rig.value("leak_sidecar_scrape_body_bytes") == float(len(GO_VARS))
    assert rig.value("leak_sidecar_scrapes_total") == 1.0
    assert rig.value("leak_sidecar_scrape_objects_collapsed_total", reason="max_object_keys") == 1.0
    assert rig.value("leak_sidecar_scrape_interval_seconds") == 15.0
    last = rig.scraper.last
    assert (last.up, last.health, last.series, last.body_bytes, last.error) == (
        True,
        "up",
        56,
        len(GO_VARS),
        "",
    )
    assert last.url == f"http://127.0.0.1:{target.port}/debug/vars"


async def test_failure_stales_series_and_counts(
    target: Target, session: aiohttp.ClientSession, registry: CollectorRegistry
) -> None:
    """A failed scrape stales every scrape series, sets up=0 and counts the reason once."""
    rig = Rig(target.port, session, registry)
    await rig.scraper.scrape_once()
    target.default = status(404)
    err = await rig.fail()
    assert err.reason == "http_4xx"
    assert str(err) == f"{rig.scraper.url} answered 404 Not Found"
    assert target.requests == 2  # a 404 is not retried
    series = rig.store.get(labelset({"__name__": "requests"}))
    assert series is not None
    last = series.last()
    assert last is not None
    assert last[0] == 1_700_000_015_000
    assert is_stale(last[1])
    assert rig.value("leak_sidecar_target_up") == 0.0
    assert rig.value("leak_sidecar_scrape_errors_total", reason="http_4xx") == 1.0
    assert rig.value("leak_sidecar_scrape_errors_total", reason="timeout") == 0.0
    assert rig.scraper.last.health == "down"
    assert rig.scraper.last.reason == "http_4xx"


async def test_5xx_is_retried_then_counted(
    target: Target,
    session: aiohttp.ClientSession,
    registry: CollectorRegistry,
    logs: list[dict[str, Any]],
) -> None:
    """5xx answers are retried with jittered backoff, each retry logged and counted."""
    rig = Rig(target.port, session, registry)
    target.default = status(503)
    err = await rig.fail()
    assert err.reason == "http_5xx"
    assert target.requests == 3
    # Full jitter: each wait is drawn below min(max_backoff, initial * 2**n).
    assert len(rig.sleeps.calls) == 2
    assert 0 <= rig.sleeps.calls[0] <= 0.1
    assert 0 <= rig.sleeps.calls[1] <= 0.2
    assert rig.value("leak_sidecar_scrape_retries_total", reason="http_5xx") == 2.0
    assert rig.value("leak_sidecar_scrape_errors_total", reason="http_5xx") == 1.0
    assert events(logs) == [
        "scrape.retry_scheduled",
        "scrape.retry_scheduled",
        "scrape.failed",
        "scrape.target_down",
    ]


async def test_5xx_then_success(
    target: Target, session: aiohttp.ClientSession, registry: CollectorRegistry
) -> None:
    """A transient 5xx cured by a retry is a successful scrape."""
    rig = Rig(target.port, session, registry)
    target.replies = [status(502)]
    snap = await rig.scraper.scrape_once()
    assert len(snap.samples) == 56
    assert target.requests == 2
    assert rig.value("leak_sidecar_scrape_retries_total", reason="http_5xx") == 1.0
    assert rig.value("leak_sidecar_scrape_errors_total", reason="http_5xx") == 0.0


async def test_refused_connection_then_no_retries_while_down(
    session: aiohttp.ClientSession, registry: CollectorRegistry
) -> None:
    """A refused connection is retried while the target's state is unknown, not once it is down."""
    rig = Rig(free_port(), session, registry)
    err = await rig.fail()
    assert err.reason == "refused"
    assert len(rig.sleeps.calls) == 2
    err = await rig.fail()
    assert err.reason == "refused"
    assert len(rig.sleeps.calls) == 2  # known down: one attempt per interval
    assert rig.value("leak_sidecar_scrape_errors_total", reason="refused") == 2.0
    assert rig.value("leak_sidecar_scrape_retries_total", reason="refused") == 2.0


async def test_retries_resume_once_the_target_is_back_up(
    target: Target, session: aiohttp.ClientSession, registry: CollectorRegistry
) -> None:
    """Down: one attempt per interval; up again: the whole retry policy again."""
    rig = Rig(target.port, session, registry)
    target.default = status(503)
    await rig.fail()
    assert target.requests == 3
    await rig.fail()
    assert target.requests == 4  # known down: a single attempt
    target.default = ok()
    await rig.scraper.scrape_once()
    assert target.requests == 5
    target.default = status(503)
    await rig.fail()
    assert target.requests == 8
    assert len(rig.sleeps.calls) == 4
    assert rig.value("leak_sidecar_scrape_retries_total", reason="http_5xx") == 4.0


async def test_trickling_server_times_out(
    target: Target, session: aiohttp.ClientSession, registry: CollectorRegistry
) -> None:
    """scrape.timeout covers the whole body: a server sending a byte at a time times out."""
    rig = Rig(target.port, session, registry, interval="2s", timeout="300ms")
    target.default = trickle()
    started = time.monotonic()
    err = await rig.fail()
    elapsed = time.monotonic() - started
    assert err.reason == "timeout"
    assert str(err) == f"no complete answer from {rig.scraper.url} within scrape.timeout (300ms)"
    assert target.requests == 3
    assert 0.85 <= elapsed < 3.0
    assert rig.value("leak_sidecar_scrape_errors_total", reason="timeout") == 1.0


async def test_invalid_bodies_are_errors_not_retried(
    target: Target, session: aiohttp.ClientSession, registry: CollectorRegistry
) -> None:
    """A body that is not a JSON object fails at once with its reason."""
    rig = Rig(target.port, session, registry)
    target.replies = [ok(b"[1, 2]"), ok(b"{oops")]
    assert (await rig.fail()).reason == "not_object"
    assert (await rig.fail()).reason == "invalid_json"
    assert target.requests == 2
    assert rig.value("leak_sidecar_scrape_errors_total", reason="not_object") == 1.0
    assert rig.value("leak_sidecar_scrape_errors_total", reason="invalid_json") == 1.0


async def test_connection_cut_mid_body_is_transient(
    target: Target, session: aiohttp.ClientSession, registry: CollectorRegistry
) -> None:
    """A connection closed in the middle of the body is retried, then counted as connection."""

    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b'{"a": ')
        assert request.transport is not None
        request.transport.close()
        return resp

    rig = Rig(target.port, session, registry)
    target.default = cut
    err = await rig.fail()
    assert err.reason == "connection"
    assert target.requests == 3
    assert rig.value("leak_sidecar_scrape_retries_total", reason="connection") == 2.0


# -- size ------------------------------------------------------------------------------------


async def test_20mb_body_with_500k_keys(
    target: Target, session: aiohttp.ClientSession, registry: CollectorRegistry, big: bytes
) -> None:
    """A 20 MB body whose map has 500k keys is scraped within the caps when the cap allows it."""
    assert 20_000_000 <= len(big) < 21_000_000
    target.default = chunked(big)
    rig = Rig(
        target.port,
        session,
        registry,
        max_body_bytes="32MiB",
        soft_body_bytes="32MiB",
        max_series=100,
    )
    snap = await rig.scraper.scrape_once()
    assert snap.samples[labelset({"__name__": "sessions_keys"})] == 500_000.0
    assert len(snap.samples) == 57
    assert rig.value("leak_sidecar_scrape_body_bytes") == float(len(big))
    assert rig.value("leak_sidecar_scrape_objects_collapsed_total", reason="max_object_keys") == 2.0


@pytest.mark.parametrize("reply", [ok, chunked])
async def test_body_past_the_cap_is_refused(
    reply: Callable[[bytes], Reply],
    target: Target,
    session: aiohttp.ClientSession,
    registry: CollectorRegistry,
    big: bytes,
) -> None:
    """Past max_body_bytes (default 16 MiB) the body is refused, announced or streamed."""
    target.default = reply(big)
    rig = Rig(target.port, session, registry)
    err = await rig.fail()
    assert err.reason == "body_too_large"
    url = rig.scraper.url
    if reply is ok:
        assert (
            str(err)
            == f"{url} announces {len(big)} bytes, more than scrape.max_body_bytes (16777216)"
        )
        assert rig.value("leak_sidecar_scrape_body_bytes") == float(len(big))
    else:
        assert str(err) == (
            f"{url} sent more than scrape.max_body_bytes (16777216 bytes); raise it or export less"
        )
        read = rig.value("leak_sidecar_scrape_body_bytes")
        assert read is not None
        assert 16 << 20 < read <= (16 << 20) + (64 << 10)
    assert target.requests == 1
    assert rig.value("leak_sidecar_scrape_errors_total", reason="body_too_large") == 1.0
    assert rig.scraper.interval == 30.0  # the app paid for rendering it: back off


async def test_series_caps_are_counted(
    target: Target, session: aiohttp.ClientSession, registry: CollectorRegistry
) -> None:
    """Samples past scrape.max_series and series the store refuses are counted as dropped."""
    rig = Rig(target.port, session, registry, max_series=50, store_series=40)
    snap = await rig.scraper.scrape_once()
    assert len(snap.samples) == 50
    assert len(rig.store) == 40
    dropped = "leak_sidecar_scrape_series_dropped_total"
    # memstats 36, build 2, caches 3, goroutines, hit_ratio, http 3, leaky_sessions_keys,
    # load_average, pool_db_active and _idle make 50; pool_db_utilization, the 3 members
    # of pool.redis (counted without descending), ready and requests are dropped.
    assert rig.value(dropped, reason="max_series") == 6.0
    assert rig.value(dropped, reason="store_full") == 10.0


# -- state changes and logs ------------------------------------------------------------------


async def test_target_state_is_logged_on_change_only(
    target: Target,
    session: aiohttp.ClientSession,
    registry: CollectorRegistry,
    logs: list[dict[str, Any]],
) -> None:
    """target_down and target_up are logged when the state changes, not every scrape."""
    rig = Rig(target.port, session, registry)
    target.replies = [status(404), status(404), ok(), ok(), status(404)]
    for _ in range(5):
        with contextlib.suppress(ScrapeError):
            await rig.scraper.scrape_once()
    changes = [e for e in logs if e["event"] in ("scrape.target_down", "scrape.target_up")]
    assert [(e["event"], e["log_level"]) for e in changes] == [
        ("scrape.target_down", "warning"),
        ("scrape.target_up", "info"),
        ("scrape.target_down", "warning"),
    ]
    assert changes[0]["reason"] == "http_4xx"
    assert changes[1]["series"] == 56
    warnings = [e for e in logs if e["event"] == "scrape.warnings"]
    assert len(warnings) == 1  # the same warnings two scrapes in a row are logged once
    assert warnings[0]["warnings"] == [
        "'leaky_sessions' has more than scrape.max_object_keys (1000) keys: "
        "exported as leaky_sessions_keys = 1500"
    ]


# -- the interval adapts ---------------------------------------------------------------------


class Clock:
    """A monotonic clock that moves ``step`` seconds at every reading."""

    def __init__(self) -> None:
        self.now = 0.0
        self.step = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


async def test_interval_stretches_while_costly_and_steps_back(
    target: Target,
    session: aiohttp.ClientSession,
    registry: CollectorRegistry,
    logs: list[dict[str, Any]],
) -> None:
    """Costly scrapes double the interval up to max_interval; three cheap ones halve it."""
    clock = Clock()
    rig = Rig(target.port, session, registry, monotonic=clock)
    seen = []
    clock.step = 10.0  # every scrape costs tens of seconds: above 5% of any interval
    for _ in range(4):
        await rig.scraper.scrape_once()
        seen.append(rig.scraper.interval)
    clock.step = 0.0
    for _ in range(10):
        await rig.scraper.scrape_once()
        seen.append(rig.scraper.interval)
    assert seen == [30, 60, 120, 120, 120, 120, 60, 60, 60, 30, 30, 30, 15, 15]
    assert rig.value("leak_sidecar_scrape_interval_seconds") == 15.0
    changes = [e for e in logs if e["event"] == "scrape.interval_changed"]
    assert [(e["old_seconds"], e["new_seconds"], e["reason"]) for e in changes] == [
        (15.0, 30.0, "cost"),
        (30.0, 60.0, "cost"),
        (60.0, 120.0, "cost"),
        (120.0, 60.0, "cheap"),
        (60.0, 30.0, "cheap"),
        (30.0, 15.0, "cheap"),
    ]
    assert rig.scraper.last.interval_s == 15.0


async def test_interval_stretches_past_soft_body_bytes(
    target: Target,
    session: aiohttp.ClientSession,
    registry: CollectorRegistry,
    logs: list[dict[str, Any]],
) -> None:
    """A body past soft_body_bytes stretches the interval even when it was read quickly."""
    rig = Rig(target.port, session, registry, monotonic=lambda: 0.0, soft_body_bytes="30KB")
    await rig.scraper.scrape_once()
    assert rig.scraper.interval == 30.0
    change = next(e for e in logs if e["event"] == "scrape.interval_changed")
    assert change["reason"] == "body_bytes"
    assert change["body_bytes"] == len(GO_VARS)


# -- the loop --------------------------------------------------------------------------------


async def test_run_survives_failures_and_bugs_and_stops(
    target: Target,
    session: aiohttp.ClientSession,
    registry: CollectorRegistry,
    logs: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The loop outlives failed scrapes and bugs, waits the interval, and ends when stopped."""
    stop = asyncio.Event()
    waits = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 4:
            stop.set()
        await asyncio.sleep(0)

    rig = Rig(target.port, session, registry, monotonic=lambda: 100.0, sleep=sleep)
    target.replies = [status(404), ok(b"[]")]
    real = flatten
    calls = itertools.count()

    def flaky(body: bytearray, cfg: Any) -> Any:
        if next(calls) == 1:
            raise RuntimeError("boom")
        return real(body, cfg)

    monkeypatch.setattr(scrape_module, "flatten", flaky)
    await asyncio.wait_for(rig.scraper.run(stop), timeout=10)
    assert waits == [15.0, 15.0, 15.0, 15.0]
    errors = "leak_sidecar_scrape_errors_total"
    assert rig.value(errors, reason="http_4xx") == 1.0
    assert rig.value(errors, reason="not_object") == 1.0
    assert rig.value(errors, reason="internal") == 1.0  # the third scrape hit the bug
    assert rig.value("leak_sidecar_scrapes_total") == 4.0
    assert rig.value("leak_sidecar_target_up") == 1.0
    bug = next(e for e in logs if e["event"] == "scrape.bug")
    assert bug["error"] == "RuntimeError('boom')"


async def test_run_returns_at_once_when_stopped(
    target: Target, session: aiohttp.ClientSession, registry: CollectorRegistry
) -> None:
    """Setting stop ends the wait between scrapes without waiting out the interval."""
    stop = asyncio.Event()
    waiting = asyncio.Event()

    async def forever(_: float) -> None:
        waiting.set()
        await asyncio.Event().wait()

    rig = Rig(target.port, session, registry, sleep=forever)
    task = asyncio.create_task(rig.scraper.run(stop))
    await asyncio.wait_for(waiting.wait(), timeout=5)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert rig.value("leak_sidecar_scrapes_total") == 1.0


def test_reasons_are_pinned() -> None:
    """The reason label values are public: rules and dashboards select on them."""
    assert scrape_module.ERROR_REASONS == (
        "refused",
        "connect",
        "connection",
        "timeout",
        "http_3xx",
        "http_4xx",
        "http_5xx",
        "http",
        "tls",
        "credentials",
        "body_too_large",
        "invalid_json",
        "not_object",
        "too_deep",
        "too_many_keys",
        "internal",
    )


async def test_own_metric_names_are_pinned(
    session: aiohttp.ClientSession, registry: CollectorRegistry
) -> None:
    """The scraper's own metric families are public: rules and dashboards use them."""
    Rig(free_port(), session, registry)
    assert sorted((m.name, m.type) for m in registry.collect()) == [
        ("leak_sidecar_scrape_body_bytes", "gauge"),
        ("leak_sidecar_scrape_duration_seconds", "gauge"),
        ("leak_sidecar_scrape_errors", "counter"),
        ("leak_sidecar_scrape_interval_seconds", "gauge"),
        ("leak_sidecar_scrape_name_collisions", "counter"),
        ("leak_sidecar_scrape_objects_collapsed", "counter"),
        ("leak_sidecar_scrape_retries", "counter"),
        ("leak_sidecar_scrape_series_dropped", "counter"),
        ("leak_sidecar_scrapes", "counter"),
        ("leak_sidecar_series", "gauge"),
        ("leak_sidecar_target_up", "gauge"),
    ]
