"""Hands the embedded engine's alerts to whoever acts on them.

The rule engine calls ``Notifier.send`` after each evaluation with the alerts due for
(re)sending; ``send`` only queues them, so a slow receiver never delays an evaluation. A
background task delivers the queue in batches, in process to the receiver (the default)
or to an Alertmanager's v2 API (``rules.alertmanager_url``), with bounded retries. The
queue is bounded; when it overflows the oldest alerts are dropped and counted, as
Prometheus's notifier does: the engine re-sends firing alerts every ``resend_delay`` and
resolved ones for 15 minutes, so a dropped notification is sent again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
import orjson
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from sidecar.core.config_fields import RetryConfig
from sidecar.core.errors import ActionUnavailable, clip
from sidecar.core.loops import Sleep, wait_any
from sidecar.core.model import Alert
from sidecar.core.retry import retrying
from sidecar.core.times import rfc3339

__all__ = ["Deliver", "Notifier", "alertmanager_deliver", "alertmanager_payload"]

log = structlog.get_logger(__name__)

Deliver = Callable[[Sequence[Alert]], Awaitable[None]]
"""Delivers one batch; raises ``ActionUnavailable`` when a retry may help."""

_MAX_BATCH = 64  # Prometheus's notifier default (--alertmanager.notification-batch-size is 256)


def alertmanager_payload(alerts: Sequence[Alert]) -> bytes:
    """The JSON body of ``POST /api/v2/alerts`` (postableAlerts) for ``alerts``."""
    out = []
    for a in alerts:
        item: dict[str, object] = {
            "labels": dict(a.labels),
            "annotations": dict(a.annotations),
            "startsAt": rfc3339(a.starts_at),
            "generatorURL": a.generator_url,
        }
        if a.ends_at is not None:
            item["endsAt"] = rfc3339(a.ends_at)
        out.append(item)
    return orjson.dumps(out)


def alertmanager_deliver(
    session: aiohttp.ClientSession, base_url: str, timeout: Callable[[], float]
) -> Deliver:
    """Deliver batches to an Alertmanager at ``base_url`` (v2 API); ``timeout`` is asked
    for each request, so that a reload of ``actions.timeout`` applies."""
    url = f"{base_url}/api/v2/alerts"

    async def deliver(alerts: Sequence[Alert]) -> None:
        try:
            async with session.post(
                url,
                data=alertmanager_payload(alerts),
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=timeout()),
            ) as resp:
                text = await resp.text()
                if resp.status >= 500 or resp.status == 429:
                    raise ActionUnavailable(
                        "notify", url, f"{resp.status}: {clip(text)}", resp.status
                    )
                if resp.status >= 400:
                    # Our payload was refused: retrying the same bytes cannot help.
                    log.error("notify.rejected", url=url, status=resp.status, body=clip(text))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ActionUnavailable("notify", url, f"{type(exc).__name__}: {clip(exc)}") from exc

    return deliver


class Notifier:
    """A bounded queue of alerts and the task that delivers it."""

    def __init__(
        self,
        deliver: Deliver,
        registry: CollectorRegistry,
        *,
        destination: str,
        retry: RetryConfig,
        capacity: int = 10_000,
        sleep: Sleep | None = None,
    ) -> None:
        self._deliver = deliver
        self._retry = retry
        self._sleep = sleep
        self._queue: deque[Alert] = deque()
        self._capacity = capacity
        self._wake = asyncio.Event()
        self.destination = destination
        self._sent = Counter(
            "leak_sidecar_notifications_sent_total",
            "Alerts delivered by the embedded engine, by destination.",
            ["destination"],
            registry=registry,
        ).labels(destination)
        self._errors = Counter(
            "leak_sidecar_notifications_errors_total",
            "Batches of alerts whose delivery failed after all retries.",
            ["destination"],
            registry=registry,
        ).labels(destination)
        self._dropped = Counter(
            "leak_sidecar_notifications_dropped_total",
            "Alerts dropped because the notification queue was full.",
            registry=registry,
        )
        Gauge(
            "leak_sidecar_notifications_queue_length",
            "Alerts waiting to be delivered.",
            registry=registry,
        ).set_function(lambda: len(self._queue))

    async def send(self, alerts: Sequence[Alert]) -> None:
        """Queue alerts for delivery; never waits for the destination."""
        self._queue.extend(alerts)
        overflow = len(self._queue) - self._capacity
        if overflow > 0:
            for _ in range(overflow):
                self._queue.popleft()
            self._dropped.inc(overflow)
            log.warning("notify.queue_overflow", dropped=overflow)
        if alerts:
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, then deliver what is queued once more."""
        while not stop.is_set():
            await wait_any(stop.wait(), self._wake.wait())
            self._wake.clear()
            await self.flush()
        await self.flush()

    def reconfigure(self, retry: RetryConfig) -> None:
        """Retry the next deliveries with ``retry`` (a reload of ``actions.retry``)."""
        self._retry = retry

    async def flush(self) -> None:
        """Deliver everything queued now, in batches."""
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(_MAX_BATCH, len(self._queue)))]
            try:
                async for attempt in retrying(
                    self._retry,
                    (ActionUnavailable,),
                    event="notify.retry_scheduled",
                    sleep=self._sleep,
                    destination=self.destination,
                ):
                    with attempt:
                        await self._deliver(batch)
            except ActionUnavailable as exc:
                self._errors.inc()
                log.error(
                    "notify.failed", destination=self.destination, alerts=len(batch), error=str(exc)
                )
            else:
                self._sent.inc(len(batch))
