"""Fault injection for the demo target: a status, a delay, or a reply cut off mid-way.

Tests of the sidecar's scraper and actuator need an app that fails on cue. A ``Fault``
names a path (and optionally a method) and applies to the next ``times`` requests there;
faults on the same path apply in the order they were added. A refused connection is not
a fault the app can inject: stop the app instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

import msgspec
from aiohttp import web

from sidecar.core.loops import pause
from sidecar.core.validation import Model

__all__ = ["Fault", "FaultQueue", "drop"]


# frozen=True again: Model is frozen, but mypy's view of msgspec wants each subclass to say so.
class Fault(Model, frozen=True):
    """A failure to inject into the next ``times`` requests to ``path``.

    ``Fault.validate`` checks a body; the constructor checks only how the fields go
    together (``__post_init__``), as tests build faults with known-good values.
    """

    path: Annotated[str, msgspec.Meta(pattern=r"^/", max_length=200)]
    method: Annotated[str | None, msgspec.Meta(description="Any method when unset.")] = None
    status: (
        Annotated[int, msgspec.Meta(ge=400, le=599, description="Answer this, do nothing.")] | None
    ) = None
    delay: (
        Annotated[float, msgspec.Meta(ge=0, le=3600, description="Seconds before acting.")] | None
    ) = None
    drop: Annotated[
        bool, msgspec.Meta(description="Act, then close the connection mid-response.")
    ] = False
    times: (
        Annotated[int, msgspec.Meta(ge=1, description="How many requests; null: until cleared.")]
        | None
    ) = 1

    def __post_init__(self) -> None:
        if self.status is None and self.delay is None and not self.drop:
            raise ValueError("a fault needs status, delay or drop")
        if self.status is not None and self.drop:
            raise ValueError("status and drop exclude each other")
        if self.path.startswith("/demo/"):
            raise ValueError(f"faults cannot target the demo controls, got {self.path!r}")

    def describe(self) -> str:
        """A short text for the call record, e.g. ``delay=2.0 status=500``."""
        parts = [
            # float(): a fault built in Python may carry an int; a body's delay is a float.
            f"delay={float(self.delay)}" if self.delay else "",
            f"status={self.status}" if self.status is not None else "",
            "drop" if self.drop else "",
        ]
        return " ".join(p for p in parts if p)


class FaultQueue:
    """Pending faults; ``take`` hands out the first that matches a request and uses it up."""

    def __init__(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._sleep = sleep
        self._faults: list[tuple[Fault, list[int]]] = []  # fault, [uses left, -1: forever]
        # Set when the app shuts down, so that no shutdown waits out an injected delay.
        self.closing = asyncio.Event()

    def add(self, fault: Fault) -> None:
        """Queue ``fault`` behind the others."""
        self._faults.append((fault, [fault.times if fault.times is not None else -1]))

    def clear(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    def pending(self) -> list[Fault]:
        """Pending faults, in the order they apply."""
        return [f for f, _ in self._faults]

    def take(self, method: str, path: str) -> Fault | None:
        """The fault for this request, if any, counted as used."""
        for i, (fault, left) in enumerate(self._faults):
            if fault.path == path and fault.method in (None, method):
                if left[0] > 0:
                    left[0] -= 1
                    if left[0] == 0:
                        del self._faults[i]
                return fault
        return None

    async def arrive(self, method: str, path: str) -> Fault | None:
        """Take the request's fault and sit out its delay; 503 if the app stops meanwhile."""
        fault = self.take(method, path)
        if not await self.wait(fault):
            raise web.HTTPServiceUnavailable(
                text='{"error":"shutting down"}', content_type="application/json"
            )
        return fault

    async def wait(self, fault: Fault | None) -> bool:
        """Sit out the fault's delay; False when the app began shutting down meanwhile."""
        if fault is None or not fault.delay:
            return True
        return not await pause(self.closing, fault.delay, self._sleep)


async def drop(
    request: web.Request, status: int, body: bytes, content_type: str
) -> web.StreamResponse:
    """Send the headers and half the body, then close: the client sees a cut-off reply."""
    response = web.StreamResponse(status=status)
    response.content_type = content_type
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.close()
    return response
