"""The calls decided and not finished: started in the background, journaled when done.

A decision's calls start once it is durable (``Calls.start``) and stay in ``pending``
until they end. A circuit call is a level: it goes to the ``Reconciler``, which sends
the circuit's current one until the app confirms it and supersedes an older one still
unconfirmed. A cache flush is an event: it runs in a task of its own, after the flush
started before it, with the actuator's bounded retries; a crash in it is logged and
leaves it in the journal, so that the next start makes it again. Each call that ends is
journaled ``Done`` (``finished``) so that a restart does not repeat it. ``drain`` lets
the supervisor wait for them all at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog
from prometheus_client import CollectorRegistry

from sidecar.actions.action import Action
from sidecar.actions.actuator import Actuator
from sidecar.actions.entries import Done, OutcomeRecord
from sidecar.actions.history import ActionEvent, History
from sidecar.actions.journal import Journal
from sidecar.actions.reconcile import OnBehind, Reconciler
from sidecar.core.config_actions import ReconcileConfig
from sidecar.core.errors import JournalError
from sidecar.core.loops import Sleep
from sidecar.core.times import now_ms

__all__ = ["Calls"]

log = structlog.get_logger(__name__)


class Calls:
    """Starts journaled calls, keeps them ``pending`` until they end, journals their end."""

    def __init__(
        self,
        cfg: ReconcileConfig,
        actuator: Actuator,
        journal: Journal,
        registry: CollectorRegistry,
        *,
        on_behind: OnBehind,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._actuator = actuator
        self._journal = journal
        self._clock = clock
        self.pending: dict[str, Action] = {}
        """Journaled actions whose call has not finished, in the order decided."""
        self.history = History()
        self.reconciler = Reconciler(
            cfg,
            actuator,
            registry,
            history=self.history,
            on_done=self.finished,
            on_behind=on_behind,
            clock=clock,
            sleep=sleep,
        )
        self._last_flush: asyncio.Task[None] | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    def start(self, action: Action, generation: int) -> None:
        """Start a durable action; ``generation`` is the committed circuit's."""
        self.pending[action.id] = action
        self.history.started(
            ActionEvent(action.created_ms, action.id, action.kind, action.source, action.reason)
        )
        if action.kind == "cache_flush":
            task = asyncio.create_task(
                self._flush(action, self._last_flush), name=f"action-{action.kind}-{action.id}"
            )
            self._last_flush = task
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)
            return
        old = self.reconciler.want(action, generation)
        if old is not None:
            # Never sent again; a restart drops it too (it is not the circuit's call).
            self.pending.pop(old.id, None)
            self.history.finished(old.id, "superseded")

    async def _flush(self, action: Action, previous: asyncio.Task[None] | None) -> None:
        if previous is not None and not previous.done():
            # wait, not await: neither call's cancellation may spread to the other.
            await asyncio.wait([previous])
        try:
            outcome = await self._actuator.run(action, lambda: self.history.attempted(action.id))
        except Exception as exc:  # a bug must not kill the lane; it is logged
            log.error("action.crashed", action=action.kind, action_id=action.id, exc_info=exc)
            return  # stays in the journal: the next start tries again
        await self.finished(action, outcome)

    async def finished(self, action: Action, outcome: str) -> None:
        """An action ended: forget it, show it, and journal it so a restart does not repeat it."""
        self.pending.pop(action.id, None)
        self.history.finished(action.id, outcome)
        # A failure is logged; a restart repeats the call with the same Idempotency-Key.
        with contextlib.suppress(JournalError):
            done = Done(at=now_ms(self._clock()), done=(OutcomeRecord(action.id, outcome),))
            await self._journal.append(done)

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for running calls; cancel the rest (journaled)."""
        tasks = set(self._flushes)
        if self.reconciler.task is not None and not self.reconciler.task.done():
            tasks.add(self.reconciler.task)
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            log.warning("action.drain_cancelled", count=len(late))
            await asyncio.gather(*late, return_exceptions=True)
