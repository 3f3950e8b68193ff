"""The notifier: queued, batched, retried delivery of the engine's alerts."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from sidecar.core.config_fields import RetryConfig
from sidecar.core.errors import ActionUnavailable
from sidecar.core.model import Alert, fingerprint
from sidecar.rules.notify import Notifier, alertmanager_deliver, alertmanager_payload

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
RETRY = RetryConfig.validate(
    {"attempts": 3, "initial_backoff": "10ms", "max_backoff": "20ms", "max_elapsed": "10s"}
)


def _alert(name: str, status: str = "firing") -> Alert:
    labels = {"alertname": name, "action": "cache_flush"}
    return Alert(
        status="firing" if status == "firing" else "resolved",
        labels=labels,
        annotations={"summary": "s"},
        starts_at=T0,
        ends_at=T0 + dt.timedelta(minutes=4),
        generator_url="http://sidecar/v1/rules",
        fingerprint=fingerprint(labels),
    )


def test_payload_is_alertmanager_postable_alerts() -> None:
    """The v2 body is a list of postableAlert with RFC 3339 UTC times."""
    assert orjson.loads(alertmanager_payload([_alert("A")])) == [
        {
            "labels": {"alertname": "A", "action": "cache_flush"},
            "annotations": {"summary": "s"},
            "startsAt": "2026-01-02T03:04:05Z",
            "endsAt": "2026-01-02T03:08:05Z",
            "generatorURL": "http://sidecar/v1/rules",
        }
    ]


class _Sink:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.bodies: list[list[dict[str, Any]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.failures:
            self.failures -= 1
            return web.Response(status=503, text="busy")
        self.bodies.append(body)
        return web.Response(status=200)


@pytest.fixture
async def sink_url() -> AsyncIterator[tuple[_Sink, str]]:
    sink = _Sink(failures=2)
    app = web.Application()
    app.router.add_post("/api/v2/alerts", sink.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield sink, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_alertmanager_delivery_retries_5xx_then_delivers(
    sink_url: tuple[_Sink, str], registry: CollectorRegistry
) -> None:
    """Two 503s are retried with recorded sleeps; the third attempt delivers the batch."""
    sink, url = sink_url
    sleeps: list[float] = []

    async def sleep(s: float) -> None:
        sleeps.append(s)

    async with aiohttp.ClientSession() as session:
        n = Notifier(
            alertmanager_deliver(session, url, timeout=lambda: 2.0),
            registry,
            destination="alertmanager",
            retry=RETRY,
            sleep=sleep,
        )
        await n.send([_alert("A"), _alert("B", "resolved")])
        await n.flush()
    # Full jitter: uniform in [0, initial * 2**(n-1)], initial 10ms.
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.01
    assert 0 <= sleeps[1] <= 0.02
    assert [[a["labels"]["alertname"] for a in b] for b in sink.bodies] == [["A", "B"]]
    sent = registry.get_sample_value(
        "leak_sidecar_notifications_sent_total", {"destination": "alertmanager"}
    )
    assert sent == 2.0


async def test_unreachable_destination_is_counted_not_raised(registry: CollectorRegistry) -> None:
    """After the bounded retries a failed batch is counted and the notifier goes on."""
    calls: list[int] = []

    async def deliver(alerts: Sequence[Alert]) -> None:
        calls.append(len(alerts))
        raise ActionUnavailable("notify", "http://x", "refused")

    async def sleep(_: float) -> None:
        return None

    n = Notifier(deliver, registry, destination="receiver", retry=RETRY, sleep=sleep)
    await n.send([_alert("A")])
    await n.flush()
    assert calls == [1, 1, 1]
    errors = registry.get_sample_value(
        "leak_sidecar_notifications_errors_total", {"destination": "receiver"}
    )
    assert errors == 1.0


async def test_overflow_drops_the_oldest(registry: CollectorRegistry) -> None:
    """A full queue drops its oldest alerts and counts them."""
    got: list[str] = []

    async def deliver(alerts: Sequence[Alert]) -> None:
        got.extend(a.labels["alertname"] for a in alerts)

    n = Notifier(deliver, registry, destination="receiver", retry=RETRY, capacity=2)
    await n.send([_alert("A"), _alert("B"), _alert("C")])
    await n.flush()
    assert got == ["B", "C"]
    assert registry.get_sample_value("leak_sidecar_notifications_dropped_total") == 1.0


async def test_run_delivers_as_alerts_arrive_and_drains_on_stop(
    registry: CollectorRegistry,
) -> None:
    """The delivery task wakes on send and delivers what is left when stopped."""
    got: list[str] = []
    delivered = asyncio.Event()

    async def deliver(alerts: Sequence[Alert]) -> None:
        got.extend(a.labels["alertname"] for a in alerts)
        delivered.set()

    n = Notifier(deliver, registry, destination="receiver", retry=RETRY)
    stop = asyncio.Event()
    task = asyncio.create_task(n.run(stop))
    await n.send([_alert("A")])
    async with asyncio.timeout(5):
        await delivered.wait()
    await n.send([_alert("B")])
    stop.set()
    async with asyncio.timeout(5):
        await task
    assert got == ["A", "B"]


async def test_alertmanager_timeout_is_read_for_each_request() -> None:
    """A reload of actions.timeout reaches the next delivery: the timeout is asked for
    each request, not fixed when the delivery function is made."""
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/api/v2/alerts", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    timeout = [30.0]
    try:
        async with aiohttp.ClientSession() as session:
            deliver = alertmanager_deliver(session, url, timeout=lambda: timeout[0])
            timeout[0] = 0.05
            with pytest.raises(ActionUnavailable) as info:
                await deliver([_alert("A")])
            assert (str(info.value), info.value.status) == ("TimeoutError: ", None)
    finally:
        release.set()
        await runner.cleanup()
