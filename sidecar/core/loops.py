"""The one contract of every long-running loop, and the one way it waits.

Every loop the supervisor owns is ``async def run(self, stop: asyncio.Event)``: it runs
until ``stop`` is set, then returns (a loop that returns while ``stop`` is clear is a
bug the supervisor turns into a crash). Between rounds it waits with ``pause``, which
returns as soon as ``stop`` is set, so shutdown never waits out an interval, and which
sleeps on the injected ``sleep`` so tests and the demo can compress time.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["Loop", "Sleep", "pause", "stop_on_signals", "wait_any"]

Sleep = Callable[[float], Awaitable[object]]
"""An injectable ``asyncio.sleep``: tests pass one that records and returns at once."""


class Loop(Protocol):
    """A long-running stage: runs until ``stop`` is set, then returns."""

    async def run(self, stop: asyncio.Event) -> None: ...


def stop_on_signals(*, hup: Callable[[], object] | None = None) -> asyncio.Event:
    """The ``stop`` of a process's loops: SIGTERM (the container's stop) and SIGINT
    (Ctrl-C) set it; SIGHUP calls ``hup`` when given. Called on the running loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if hup is not None:
        loop.add_signal_handler(signal.SIGHUP, hup)
    return stop


async def wait_any(*waits: Awaitable[object]) -> None:
    """Return once the first of ``waits`` is done, raising what it raised; cancel the rest."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
    for t in done:
        if not t.cancelled() and (exc := t.exception()) is not None:
            raise exc


async def pause(stop: asyncio.Event, seconds: float, sleep: Sleep = asyncio.sleep) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True when stopped."""
    if not stop.is_set():
        await wait_any(sleep(seconds), stop.wait())
    return stop.is_set()
