"""The demo's eyes: it observes the app and the sidecar over HTTP and narrates each change.

Every line comes from an HTTP answer: the app's ``/debug/vars`` and ``/demo/calls``, the
sidecar's ``/v1/alerts`` and ``/v1/circuit``. Quantities are printed with the status
page's formatters (``sidecar.web.units``), an alert in its rule's own words (its
``summary``). Each alert's story is told to its end: a resolved alert says whether it
fired and for how long, and ``close_stories`` names what is still pending or firing when
the demo stops watching.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from sidecar.core.durations import format_duration
from sidecar.web.units import format_bytes, format_percent, si

__all__ = ["AlertStory", "Watcher", "alert_line", "app_line", "resolved_line", "unfinished_line"]

_POLL = 0.2  # wall seconds between observations
_REPORT_EVERY = 120.0  # app seconds between status lines


@dataclass
class AlertStory:
    """One alert as the demo saw it: when it went pending, when it fired (app seconds)."""

    name: str
    state: str
    pending_at: float
    firing_at: float | None = None


def app_line(doc: Mapping[str, Any], memory_limit: int) -> str:
    """The app's state from its expvar document, in human units."""
    heap = doc["memstats"]["HeapInuse"]
    return (
        f"app: {si(doc['cache_keys_total'])} cache keys, heap in use {format_bytes(heap)} "
        f"({format_percent(heap / memory_limit)} of its {format_bytes(memory_limit)} limit), "
        f"pool {doc['conn_pool_active']}/{doc['conn_pool_max']} connections"
    )


def alert_line(alert: Mapping[str, Any]) -> str:
    """An alert that changed state, in its rule's words (its summary) when it has them."""
    name = alert["labels"]["alertname"]
    summary = alert.get("annotations", {}).get("summary")
    said = summary if summary else f"value {si(float(alert['value']))}"
    return f"sidecar: alert {name} is {alert['state']}: {said}"


def _took(seconds: float) -> str:
    return format_duration(max(0, round(seconds)))


def resolved_line(story: AlertStory, now: float, for_s: float) -> str:
    """How an alert's story ended: after firing, or before its ``for`` ran out."""
    if story.firing_at is not None:
        return (
            f"sidecar: alert {story.name} resolved after firing for {_took(now - story.firing_at)}"
        )
    return (
        f"sidecar: alert {story.name} resolved without firing: its condition held "
        f"{_took(now - story.pending_at)} of the {_took(for_s)} its for: asks"
    )


def unfinished_line(story: AlertStory, now: float, for_s: float) -> str:
    """An alert still active when the demo stops watching, and how far it got."""
    if story.firing_at is not None:
        return (
            f"sidecar: alert {story.name} is still firing as the demo ends "
            f"(for {_took(now - story.firing_at)}); it resolves once its condition clears"
        )
    return (
        f"sidecar: alert {story.name} is still pending as the demo ends: its condition has "
        f"held {_took(now - story.pending_at)} of the {_took(for_s)} its for: asks; it fires "
        "only if it holds that long"
    )


class Watcher:
    """Observes the app and the sidecar over HTTP and narrates each change once."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        app_url: str,
        sidecar_url: str,
        say: Callable[[str], None],
        elapsed: Callable[[], float],
        *,
        memory_limit: int,
        for_s: Mapping[str, float],
    ) -> None:
        self._http = http
        self._app = app_url
        self._sidecar = sidecar_url
        self._say = say
        self._elapsed = elapsed
        self._limit = memory_limit
        self._for_s = for_s
        self.stories: dict[str, AlertStory] = {}
        self._circuit = "closed"
        self._seen_calls = 0
        self.counts: dict[str, int] = {}
        self._next_report = 0.0
        self._leak_on = True
        self._heap = 0.0
        self.heap_peak = 0.0
        self.heap_at_break: float | None = None

    async def _get(self, url: str) -> Any:
        async with self._http.get(url) as resp:
            resp.raise_for_status()
            return await resp.json(content_type=None)

    async def observe(self) -> None:
        """One round of observations, narrating what changed."""
        doc = await self._get(f"{self._app}/debug/vars")
        self._heap = doc["memstats"]["HeapInuse"] / self._limit
        self.heap_peak = max(self.heap_peak, self._heap)
        now = self._elapsed()
        if now >= self._next_report:
            self._next_report = now + _REPORT_EVERY
            self._say(app_line(doc, self._limit))
        await self._observe_alerts(now)
        calls = (await self._get(f"{self._app}/demo/calls"))["calls"]
        for call in calls[self._seen_calls :]:
            self.counts[call["path"]] = self.counts.get(call["path"], 0) + 1
            body = call["body"] or {}
            self._say(
                f"app received {call['method']} {call['path']} "
                f"(Idempotency-Key {str(call['idempotency_key'])[:12]}..., "
                f"source {body.get('source')}, reason: {body.get('reason')})"
            )
            if call["path"] == "/v1/circuit/break" and self.heap_at_break is None:
                self.heap_at_break = self._heap
                self._say(
                    f"the circuit broke with the heap in use at "
                    f"{format_bytes(self._heap * self._limit)}, "
                    f"{format_percent(self._heap)} of the memory limit: the leak is stopped "
                    "before the kernel OOM-kills the app at 100%"
                )
        self._seen_calls = len(calls)
        circuit = await self._get(f"{self._sidecar}/v1/circuit")
        if circuit["state"] != self._circuit:
            self._circuit = circuit["state"]
            self._say(f"sidecar: circuit {circuit['state']} ({circuit['reason']})")

    async def _observe_alerts(self, now: float) -> None:
        alerts = (await self._get(f"{self._sidecar}/v1/alerts"))["data"]["alerts"]
        active = {a["labels"]["alertname"]: a for a in alerts}
        for name, alert in sorted(active.items()):
            story = self.stories.get(name)
            if story is not None and story.state == alert["state"]:
                continue
            if story is None:
                story = self.stories[name] = AlertStory(name, alert["state"], now)
            story.state = alert["state"]
            if story.state == "firing" and story.firing_at is None:
                story.firing_at = now
            self._say(alert_line(alert))
        for name in sorted(self.stories.keys() - active.keys()):
            self._say(resolved_line(self.stories.pop(name), now, self._for_s.get(name, 0.0)))

    async def leak(self, settings: Mapping[str, float | bool]) -> None:
        """Switch the app's leak as given (``/demo/leak``)."""
        async with self._http.post(f"{self._app}/demo/leak", json=dict(settings)) as resp:
            resp.raise_for_status()

    async def until_story_told(self) -> None:
        """Watch until the app got a flush, a break and then a reset."""
        while self.counts.get("/v1/circuit/reset", 0) == 0:
            await self.observe()
            if self._leak_on and self.counts.get("/v1/circuit/break"):
                await self.leak({"on": False})
                self._leak_on = False
                self._say("leak switched off (the on-call engineer fixed the leaking code path)")
            await asyncio.sleep(_POLL)
        await self.observe()

    async def settle(self, app_s: float) -> None:
        """Watch a while longer (``app_s`` app seconds at most) for active alerts to end."""
        until = self._elapsed() + app_s
        while self.stories and self._elapsed() < until:
            await asyncio.sleep(_POLL)
            await self.observe()

    def close_stories(self) -> None:
        """Say where every alert still active stands: no story is left hanging."""
        now = self._elapsed()
        for name in sorted(self.stories):
            self._say(unfinished_line(self.stories[name], now, self._for_s.get(name, 0.0)))
