"""From routed alerts and operator requests to journaled actions running in the background.

Every action, whoever asked, goes through ``Dispatcher``: under one lock it deduplicates
alert instances, applies cooldowns and plans the breaker's transitions (``plan``), and
submits the whole decision as one journal entry; the lock is released while the entry
waits for its group commit (``Journal.submit``), so that the decisions of concurrent
deliveries share one fsync. Each is taken on top of those queued before it (``_head``),
and committed in memory (breaker, pending calls, started calls) only once durable. A
journal failure leaves nothing half-done: the failed decisions are undone, nothing is
committed and the caller answers 503, so that Alertmanager retries.

An alert that would open a closed circuit first asks the fleet budget (``fleet``), outside
the lock; a refused break is journaled with its decision and delivered again by
``reexamine`` every ``breaker.check_interval`` while it fires, after a restart too, routed
by the config of now (``router``, which the receiver routes by too): a reload or restart
that routes it elsewhere drops it.

Each decision is one ``Decision`` entry, each finished call one ``Done``, and a
compaction writes one ``Snapshot`` (see ``entries``). Replaying them at start
(``entries.replay``) restores the breaker, the dedupe and cooldown memory, the refused
breaks, and resumes unfinished calls with their original ids, hence their original
``Idempotency-Key``.

Breaks and resets are levels, not events: each decision that changes what the app's
circuit should be takes the next generation (``CircuitState.calling``); its call goes to
the ``Reconciler`` and is done (journaled ``Done``) once the app confirmed it. At start
the journal's current intent is handed back: sent again unless it was confirmed.
Flushes run one after another (``calls``). ``drain`` lets the supervisor wait for the
calls at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import msgspec
import structlog
from prometheus_client import CollectorRegistry

from sidecar.actions.action import Action, alert_names, new_action_id
from sidecar.actions.actuator import Actuator
from sidecar.actions.breaker import Breaker, CircuitState
from sidecar.actions.calls import Calls
from sidecar.actions.entries import Decision, Entry, Snapshot, replay
from sidecar.actions.fleet import Budget, Verdict
from sidecar.actions.history import ActionEvent, Transition
from sidecar.actions.intent import resume
from sidecar.actions.journal import Journal
from sidecar.actions.plan import Memory, Plan, Refused
from sidecar.actions.routing import Route, Router
from sidecar.core.config_actions import ActionsConfig
from sidecar.core.errors import JournalError
from sidecar.core.loops import Sleep, pause
from sidecar.core.model import ActionKind, Alert
from sidecar.core.times import iso, now_ms

__all__ = ["Delivery", "Dispatcher"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What came of one delivery of alerts."""

    actions: tuple[Action, ...] = ()
    duplicates: int = 0
    cooled_down: int = 0
    forwarded: int = 0
    """Alerts about another sidecar, accepted by their owner (``forward``)."""


class Dispatcher:
    """Decides, journals and starts actions; restores itself from the journal."""

    def __init__(
        self,
        cfg: ActionsConfig,
        journal: Journal,
        breaker: Breaker,
        actuator: Actuator,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        new_id: Callable[[], str] = new_action_id,
        budget: Budget | None = None,
        router: Router,
    ) -> None:
        self._cfg = cfg
        self.router = router
        """Every alert's action, as configured now (``reconfigure``): the receiver's routing
        of a delivery and the re-examination of a refused break read this one."""
        self.budget = budget
        self.journal = journal
        self.breaker = breaker
        self._clock = clock
        self._new_id = new_id
        self._lock = asyncio.Lock()
        self.memory = Memory(cfg, breaker, registry)
        self.calls = Calls(
            cfg.reconcile,
            actuator,
            journal,
            registry,
            on_behind=self.catch_up,
            clock=clock,
            sleep=sleep,
        )
        self.pending = self.calls.pending
        """Journaled actions whose call has not finished, in the order decided."""
        self.history = self.calls.history
        self.reconciler = self.calls.reconciler
        self._tentative: CircuitState | None = None
        """The circuit of the latest decision submitted; None until the first one."""
        self._waiting: str | None = None

    def reconfigure(self, cfg: ActionsConfig, router: Router) -> None:
        """Use ``cfg``'s dedupe and journal bounds, and ``router``, from now on (a reload)."""
        self._cfg = cfg
        self.router = router
        self.memory.cfg = cfg

    def _now(self) -> int:
        """The injected clock in integer milliseconds."""
        return now_ms(self._clock())

    # -- alerts ---------------------------------------------------------------------

    async def apply(self, routed: Sequence[tuple[Alert, Route]], source: str) -> Delivery:
        """Act on routed alerts; raises ``JournalError`` (nothing done) if it cannot journal."""
        # Asked before the lock: a slow Prometheus must not hold up an operator's reset.
        verdict = await self._ask_budget(routed)
        durable: asyncio.Future[None] | None = None
        async with self._lock:
            now = self._now()
            self.memory.expire(now)
            plan = Plan(self._head)
            for alert, route in routed:
                self.memory.plan_alert(plan, alert, route, now, verdict=verdict, src=source)
            self.memory.bound(plan)
            actions = [
                self._action(kind, f"alert {alert_names(alerts)} firing", source, alerts, now)
                for kind, alerts in plan.calls.items()
                if alerts
            ]
            state = plan.state
            for a in actions:
                if a.kind != "cache_flush":
                    state = state.calling(a.id)
            changed = state != self._head
            if plan.seen or changed or actions or plan.refused:
                durable = self._submit(
                    now,
                    actions,
                    state if changed else None,
                    seen=plan.seen,
                    cooldowns=plan.cooldowns,
                    refused=plan.refused,
                )
        if durable is None:
            # Nothing to journal (duplicates, say): a want the budget was asked for may
            # have to go now; a submitted decision releases once durable (``_submit``).
            self._release()
        await self._durable(durable)
        return Delivery(tuple(actions), plan.duplicates, plan.cooled_down)

    async def _ask_budget(self, routed: Sequence[tuple[Alert, Route]]) -> Verdict | None:
        """The fleet budget's verdict when these alerts would open a closed circuit."""
        # The circuit as decided so far: one opening in the queued group commit asks nothing.
        if self.budget is None or self._head.state != "closed":
            return None
        if not self.memory.would_open(routed):
            return None
        return await self.budget.decide()

    def _release(self) -> None:
        # A granted want stays published while the circuit is open: see ``fleet``. Open
        # as decided (``_head``), not only as durable: a decision committed ahead of a
        # queued opening must not withdraw the want the opening was granted on.
        if self.budget is not None and self._head.state == "closed" and not self.memory.refused:
            self.budget.release()

    async def reexamine(self) -> None:
        """Deliver again the breaks the budget refused: level-triggered, while they fire.

        Each is routed again as the config says now: one a reload muted or sent to another
        action is dropped from the refused breaks (and flushes, if that is its action now).
        """
        for source, refused in self.memory.refused_by_source().items():
            route = self.router.route
            await self.apply([(alert, route(alert.labels)) for alert, _ in refused], source)

    # -- operators and the timer ----------------------------------------------------

    async def manual_break(self, reason: str, hold: bool) -> tuple[Action, CircuitState]:
        """An operator's break: always calls the app, even when already open."""
        async with self._lock:
            now = self._now()
            state = self.breaker.manual_break(self._head, reason, hold, now)
            action = self._action("circuit_break", reason, "operator", [], now)
            state = state.calling(action.id)
            durable = self._submit(now, [action], state)
        await self._durable(durable)
        return action, state

    async def manual_reset(self, reason: str) -> tuple[Action, CircuitState]:
        """An operator's reset: closes from any state, a hold included."""
        async with self._lock:
            now = self._now()
            state = self.breaker.reset(self._head, reason, "operator", now)
            action = self._action("circuit_reset", reason, "operator", [], now)
            state = state.calling(action.id)
            durable = self._submit(now, [action], state)
        await self._durable(durable)
        return action, state

    async def manual_flush(self, reason: str) -> Action:
        """An operator's flush: not limited by the cooldown, but starts it."""
        async with self._lock:
            now = self._now()
            action = self._action("cache_flush", reason, "operator", [], now)
            durable = self._submit(now, [action], None, cooldowns={"cache_flush": now})
        await self._durable(durable)
        return action

    async def tick(self) -> Action | None:
        """Reset the circuit automatically when due; returns the reset action if so."""
        async with self._lock:
            now = self._now()
            s = self._head
            blocked = self.breaker.blocked(s, now)
            if blocked is not None:
                if blocked != self._waiting and s.state == "open":
                    log.info("circuit.reset_waiting", why=blocked)
                self._waiting = blocked
                return None
            self._waiting = None
            reason = "every holding alert resolved and its condition cleared"
            state = self.breaker.reset(s, reason, "alert", now)
            alerts = [h.alert for h in s.holders]
            action = self._action("circuit_reset", reason, "breaker", alerts, now)
            state = state.calling(action.id)
            durable = self._submit(now, [action], state)
        await self._durable(durable)
        return action

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        """Call ``tick`` every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            # A journal failure is logged by the journal; the next tick tries again.
            with contextlib.suppress(JournalError):
                await self.reexamine()
                await self.tick()
            await pause(stop, interval)

    async def catch_up(self, action: Action, applied: int) -> int | None:
        """The app applied generation ``applied``, at or past the one ``action`` carries: this
        sidecar's journal was lost while the app kept running. The circuit's call takes
        ``applied + 1``, journaled, and the generation returned; None when ``action`` is no
        longer the circuit's call (a newer decision is sent instead)."""
        async with self._lock:
            head = self._head
            if head.call_id != action.id:
                return None
            state = replace(head, generation=max(head.generation, applied + 1))
            durable = self._submit(self._now(), [], state)
        await self._durable(durable)
        return state.generation

    # -- journal and tasks ----------------------------------------------------------

    def _action(
        self, kind: ActionKind, reason: str, source: str, alerts: Sequence[Alert], now: int
    ) -> Action:
        return Action(self._new_id(), kind, reason, source, tuple(alerts), now)

    def _submit(
        self,
        now: int,
        actions: Sequence[Action],
        state: CircuitState | None,
        *,
        seen: dict[str, int] | None = None,
        cooldowns: dict[str, int] | None = None,
        refused: dict[str, Refused | None] | None = None,
    ) -> asyncio.Future[None]:
        """Journal a decision in the next group commit; called under the lock.

        The decision's dedupe, cooldowns, refused breaks and circuit become the ground the
        next ones are decided on at once (``_head``), so that decisions queued for one
        commit see each other; they are committed (breaker, pending calls, started calls)
        only once durable, and taken back if the commit fails.
        """
        seen, cooldowns, refused = seen or {}, cooldowns or {}, refused or {}
        entry = Decision(
            at=now,
            actions=tuple(a.to_record() for a in actions),
            circuit=msgspec.UNSET if state is None else state.to_record(),
            seen=seen,
            cooldowns=cooldowns,
            refused={k: None if r is None else r.to_record() for k, r in refused.items()},
        )
        head = self._tentative
        forget = self.memory.take(seen, cooldowns, refused)
        if state is not None:
            self._tentative = state

        def undo() -> None:
            # Called latest first: the earliest failed decision's ground is restored last.
            self._tentative = head
            forget()

        def durable() -> None:
            # Journaled: from here on, commit and act.
            if state is not None:
                self._log_transition(self.breaker.state, state)
                self.breaker.commit(state)
            for a in actions:
                self.calls.start(a, self.breaker.state.generation)
            self._release()

        return self.journal.submit(entry, durable=durable, undo=undo)

    async def _durable(self, durable: asyncio.Future[None] | None) -> None:
        """Wait until a submitted decision is durable (``JournalError`` if it failed)."""
        if durable is None:
            return
        try:
            # Shielded: a cancelled caller does not cancel the decision, which goes on.
            await asyncio.shield(durable)
        except JournalError:
            self._release()  # nothing was decided: no want may stay published for it
            raise
        if self._journal_too_big():
            async with self._lock:
                # Checked again: another delivery may have compacted it meanwhile. Under
                # the lock nothing more is decided, and ``rewrite`` waits for the queued
                # entries: the live state is then all durable.
                if self._journal_too_big():
                    # A failure is logged; the old journal is intact and appends go on.
                    with contextlib.suppress(JournalError):
                        await self.journal.rewrite(self._live)

    @property
    def _head(self) -> CircuitState:
        """The circuit as decided so far: durable, or queued for the next commit."""
        return self._tentative if self._tentative is not None else self.breaker.state

    def _journal_too_big(self) -> bool:
        j = self.journal
        # Measured against the live state too, so that a large live state cannot make
        # every delivery compact.
        too_long = j.entries > self._cfg.journal_max_entries
        return too_long or j.size > max(int(self._cfg.journal_max_bytes), 2 * j.compacted_size)

    def _log_transition(self, old: CircuitState, new: CircuitState) -> None:
        if old.state == new.state and old.since_ms == new.since_ms:
            return
        self.history.transition(Transition(new.since_ms, new.state, new.reason, new.source))
        log.warning(
            f"circuit.{new.state}",
            previous=old.state,
            reason=new.reason,
            source=new.source,
            # RFC 3339 like every time the sidecar logs; the journal keeps milliseconds.
            open_until=None if new.open_until_ms is None else iso(new.open_until_ms),
            level=new.level,
        )

    def _live(self) -> list[Entry]:
        return [
            Snapshot(
                at=self._now(),
                circuit=self.breaker.state.to_record(),
                seen=self.memory.seen,
                cooldowns=self.memory.cooldowns,
                actions=tuple(a.to_record() for a in self.pending.values()),
                refused={k: r.to_record() for k, r in self.memory.refused.items()},
            )
        ]

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for running calls; cancel the rest (journaled)."""
        await self.calls.drain(grace)

    # -- restart --------------------------------------------------------------------

    async def restore(self) -> None:
        """Rebuild state from the journal, compact it, and resume unfinished calls."""
        replayed = replay(self.journal.replay())
        self.pending.update(replayed.pending)
        self.memory.restore(replayed.seen, replayed.cooldowns, replayed.refused)
        now = self._now()
        self.breaker.commit(
            CircuitState.from_record(replayed.circuit)
            if replayed.circuit is not None
            else CircuitState(since_ms=now, reason="started without a journal")
        )
        self.memory.expire(now)
        self._restore_intent()
        log.info(
            "journal.replayed",
            circuit=self.breaker.state.state,
            pending=len(self.pending),
            seen=len(self.memory.seen),
            refused=len(self.memory.refused),
        )
        # A full or read-only state directory is a degraded start, not a crash loop: the
        # old journal is intact, ``journal.problem`` says why, and writes are refused
        # (503) until the journal's watch sees the directory writable again.
        with contextlib.suppress(JournalError):
            await self.journal.rewrite(self._live)
        for action in self.pending.values():
            if action.kind == "cache_flush":
                log.warning("action.resumed", action=action.kind, action_id=action.id)
                self.calls.start(action, self.breaker.state.generation)

    def _restore_intent(self) -> None:
        """Hand the circuit's current call to the reconciler; drop the calls it superseded."""
        r = resume(self.breaker.state, list(self.pending.values()), self._new_id)
        for old in r.superseded:
            del self.pending[old]
            log.info("reconcile.superseded", action_id=old, by=r.state.call_id)
        if r.state != self.breaker.state:
            self.breaker.commit(r.state)  # the compaction that follows journals it
        if r.action is None:
            return
        if not r.confirmed:
            a = r.action
            log.warning("action.resumed", action=a.kind, action_id=a.id)
            self.history.started(ActionEvent(a.created_ms, a.id, a.kind, a.source, a.reason))
        self.reconciler.restore(r.action, r.state.generation, confirmed=r.confirmed)
