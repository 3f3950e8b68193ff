"""The loop contract's one way to wait."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.core.loops import pause, wait_any


async def test_pause_sleeps_the_injected_sleep_when_not_stopped() -> None:
    """``pause`` waits on the injected sleep with the given seconds and reports not stopped."""
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    assert await pause(asyncio.Event(), 2.5, sleep) is False
    assert slept == [2.5]


async def test_pause_returns_at_once_when_stop_is_set_during_the_sleep() -> None:
    """A set ``stop`` ends a long pause at once and reports stopped."""
    stop = asyncio.Event()
    asyncio.get_running_loop().call_soon(stop.set)
    async with asyncio.timeout(5):
        assert await pause(stop, 3600) is True


async def test_pause_does_not_sleep_once_stopped() -> None:
    """With ``stop`` already set, ``pause`` does not call the sleep at all."""
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    stop = asyncio.Event()
    stop.set()
    assert await pause(stop, 1, sleep) is True
    assert slept == []


async def test_wait_any_raises_what_the_first_one_raised() -> None:
    """An exception of the awaitable that finished first reaches the caller."""

    async def boom() -> None:
        raise LookupError("from the sleep")

    with pytest.raises(LookupError, match="from the sleep"):
        await wait_any(boom(), asyncio.Event().wait())


async def test_wait_any_cancels_the_others() -> None:
    """The awaitables still pending when the first finishes are cancelled."""
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def quick() -> None:
        await asyncio.sleep(0)

    await wait_any(quick(), forever())
    async with asyncio.timeout(5):
        await cancelled.wait()
