"""From routed alerts and operator requests to journaled actions running in the background.

Every action, whoever asked, goes through ``Dispatcher``: under one lock it deduplicates
alert instances, applies cooldowns, plans the breaker's transitions and submits the
whole decision as one journal entry; the lock is released while the entry waits for its
group commit (``Journal.submit``), so that the decisions of concurrent deliveries share
one fsync. Each is taken on top of those queued before it (``_head``), and committed in
memory (breaker, pending calls, started calls) only once durable. A journal failure
leaves nothing half-done: the failed decisions are undone, nothing is committed and the
caller answers 503, so that Alertmanager retries.

Each decision is one ``Decision`` entry, each finished call one ``Done``, and a
compaction writes one ``Snapshot`` (see ``entries``). Replaying them at start restores
the breaker, the dedupe and cooldown memory, and resumes unfinished calls with their
original ids, hence their original ``Idempotency-Key``.

Breaks and resets are levels, not events: each decision that changes what the app's
circuit should be takes the next generation (``CircuitState.calling``) and hands its
action to the ``Reconciler``, which sends the current one until the app confirms it and
supersedes an older one that is still unconfirmed; a circuit action is done (journaled
``Done``) once confirmed. At start the journal's current intent is handed back: sent
again unless it was confirmed. Flushes run in tasks this object owns, one after
another, with the actuator's bounded retries. ``drain`` lets the supervisor wait for
them all at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec
import structlog
from prometheus_client import CollectorRegistry, Counter

from sidecar.actions.action import Action, alert_names, instance_key, new_action_id
from sidecar.actions.actuator import Actuator
from sidecar.actions.breaker import Breaker, CircuitRecord, CircuitState
from sidecar.actions.entries import (
    Decision,
    Done,
    Entry,
    OutcomeRecord,
    Snapshot,
    still_pending,
)
from sidecar.actions.fleet import Budget, Verdict
from sidecar.actions.history import ActionEvent, History, Transition
from sidecar.actions.intent import resume
from sidecar.actions.journal import Journal
from sidecar.actions.reconcile import Reconciler
from sidecar.actions.routing import Route
from sidecar.core.config_actions import ActionsConfig
from sidecar.core.errors import JournalError, clip
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


@dataclass(slots=True)
class _Plan:
    state: CircuitState
    seen: dict[str, int] = field(default_factory=dict)
    cooldowns: dict[str, int] = field(default_factory=dict)
    calls: dict[ActionKind, list[Alert]] = field(
        default_factory=lambda: {"circuit_break": [], "cache_flush": []}
    )
    """The alerts each call of this delivery is made for; breaks first."""
    duplicates: int = 0
    cooled_down: int = 0


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
    ) -> None:
        self._cfg = cfg
        self.budget = budget
        self._refused: dict[str, tuple[Alert, Route, str]] = {}
        """Firing breaks the fleet budget refused, by alert instance: examined again."""
        self.journal = journal
        self.breaker = breaker
        self._actuator = actuator
        self._clock = clock
        self._new_id = new_id
        self._lock = asyncio.Lock()
        self._seen: dict[str, int] = {}
        self._cooldowns: dict[str, int] = {}
        self.pending: dict[str, Action] = {}
        """Journaled actions whose call has not finished, in the order decided."""
        self._tasks: set[asyncio.Task[None]] = set()
        self.history = History()
        self.reconciler = Reconciler(
            cfg.reconcile,
            actuator,
            registry,
            history=self.history,
            on_done=self._finished,
            clock=clock,
            sleep=sleep,
        )
        self._flushing: asyncio.Task[None] | None = None
        self._tentative: CircuitState | None = None
        """The circuit of the latest decision submitted; None until the first one."""
        self._waiting: str | None = None
        self._dedupe = Counter(
            "leak_sidecar_dedupe_total",
            "Alert notifications ignored because the same alert instance was already handled.",
            registry=registry,
        )
        self._cooldown = Counter(
            "leak_sidecar_cooldown_skipped_total",
            "Alerts that asked for an action while its cooldown was running.",
            ["action"],
            registry=registry,
        )

    def reconfigure(self, cfg: ActionsConfig) -> None:
        """Use ``cfg``'s dedupe and journal bounds from now on (a reload)."""
        self._cfg = cfg

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
            self._expire(now)
            plan = _Plan(self._head)
            for alert, route in routed:
                self._plan_alert(plan, alert, route, now, verdict=verdict, src=source)
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
            if plan.seen or changed or actions:
                durable = self._submit(
                    now, actions, state if changed else None, plan.seen, plan.cooldowns
                )
        if durable is None:
            # Nothing to journal (duplicates, say): a want the budget was asked for may
            # have to go now; a submitted decision releases once durable (``_submit``).
            self._release()
        await self._durable(durable)
        return Delivery(tuple(actions), plan.duplicates, plan.cooled_down)

    def _plan_alert(
        self,
        plan: _Plan,
        alert: Alert,
        route: Route,
        now: int,
        *,
        verdict: Verdict | None,
        src: str,
    ) -> None:
        if route.action in ("none", "invalid", "foreign"):
            return
        instance = instance_key(alert)
        if alert.status == "resolved":
            self._refused.pop(instance, None)
        key = f"{instance}:{alert.status}"
        # A firing notification that arrives after its own resolution is stale news.
        late = alert.status == "firing" and f"{instance}:resolved" in self._seen
        if late or key in self._seen or key in plan.seen:
            plan.duplicates += 1
            self._dedupe.inc()
            log.debug("alert.duplicate", alert_key=key)
            return
        plan.seen[key] = now
        if alert.status == "resolved":
            if route.action == "circuit_break":
                plan.state = self.breaker.resolve(plan.state, alert)
            return
        if route.action == "cache_flush":
            if not self._cooling(plan, route, alert, now):
                plan.calls["cache_flush"].append(alert)
                plan.cooldowns[route.cooldown_key] = now
            return
        # The cooldown limits calls: joining a circuit that is open already calls nothing.
        if plan.state.state == "closed" and self._cooling(plan, route, alert, now):
            return
        if plan.state.state == "closed" and verdict is not None and not verdict.allowed:
            # Not seen: examined again (``reexamine``) until the budget allows or it resolves.
            del plan.seen[key]
            self._refused[instance] = (alert, route, src)
            while len(self._refused) > self._cfg.dedupe_max:
                del self._refused[next(iter(self._refused))]
            return
        self._refused.pop(instance, None)
        plan.state, opened = self.breaker.fire(plan.state, alert, now)
        if opened:
            plan.cooldowns[route.cooldown_key] = now
        # Alerts that join a circuit this very delivery opened ride on the same call.
        if opened or plan.calls["circuit_break"]:
            plan.calls["circuit_break"].append(alert)

    def _cooling(self, plan: _Plan, route: Route, alert: Alert, now: int) -> bool:
        if route.cooldown_key in plan.cooldowns:
            return False  # decided in this delivery: joins the same call
        last = self._cooldowns.get(route.cooldown_key)
        if last is None or now - last >= route.cooldown * 1000:
            return False
        plan.cooled_down += 1
        self._cooldown.labels(route.action).inc()
        log.info(
            "alert.cooldown",
            action=route.action,
            alertname=clip(alert.labels.get("alertname", ""), 100),
            cooldown_key=route.cooldown_key,
            seconds_left=round((last + route.cooldown * 1000 - now) / 1000, 3),
        )
        return True

    async def _ask_budget(self, routed: Sequence[tuple[Alert, Route]]) -> Verdict | None:
        """The fleet budget's verdict when these alerts would open a closed circuit."""
        # The circuit as decided so far: one opening in the queued group commit asks nothing.
        if self.budget is None or self._head.state != "closed":
            return None
        if not any(
            route.action == "circuit_break"
            and alert.status == "firing"
            and f"{instance_key(alert)}:firing" not in self._seen
            for alert, route in routed
        ):
            return None
        return await self.budget.decide()

    def _release(self) -> None:
        # A granted want stays published while the circuit is open: see ``fleet``. Open
        # as decided (``_head``), not only as durable: a decision committed ahead of a
        # queued opening must not withdraw the want the opening was granted on.
        if self.budget is not None and self._head.state == "closed" and not self._refused:
            self.budget.release()

    async def reexamine(self) -> None:
        """Deliver again the breaks the budget refused: level-triggered, while they fire."""
        by_source: dict[str, list[tuple[Alert, Route]]] = {}
        for alert, route, source in list(self._refused.values()):
            by_source.setdefault(source, []).append((alert, route))
        for source, routed in by_source.items():
            await self.apply(routed, source)

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
        seen: dict[str, int] | None = None,
        cooldowns: dict[str, int] | None = None,
    ) -> asyncio.Future[None]:
        """Journal a decision in the next group commit; called under the lock.

        The decision's dedupe, cooldowns and circuit become the ground the next ones are
        decided on at once (``_head``), so that decisions queued for one commit see each
        other; they are committed (breaker, pending calls, started calls) only once
        durable, and taken back if the commit fails.
        """
        seen, cooldowns = seen or {}, cooldowns or {}
        entry = Decision(
            at=now,
            actions=tuple(a.to_record() for a in actions),
            circuit=msgspec.UNSET if state is None else state.to_record(),
            seen=seen,
            cooldowns=cooldowns,
        )
        head = self._tentative
        before = {k: self._cooldowns.get(k) for k in cooldowns}
        self._seen.update(seen)
        self._cooldowns.update(cooldowns)
        if state is not None:
            self._tentative = state

        def undo() -> None:
            # Called latest first: the earliest failed decision's ground is restored last.
            self._tentative = head
            for key in seen:
                self._seen.pop(key, None)
            for key, at in before.items():
                if at is None:
                    self._cooldowns.pop(key, None)
                else:
                    self._cooldowns[key] = at

        def durable() -> None:
            # Journaled: from here on, commit and act.
            if state is not None:
                self._log_transition(self.breaker.state, state)
                self.breaker.commit(state)
            for a in actions:
                self.pending[a.id] = a
                self._start(a)
            self._release()

        return self.journal.submit(entry, durable=durable, undo=undo)

    async def _durable(self, durable: asyncio.Future[None] | None) -> None:
        """Wait until a submitted decision is durable (``JournalError`` if it failed)."""
        if durable is None:
            return
        # Shielded: a cancelled caller does not cancel the decision, which goes on.
        await asyncio.shield(durable)
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

    def _expire(self, now: int) -> None:
        horizon = now - round(self._cfg.dedupe_ttl * 1000)
        # Insertion order is first-seen order: the oldest are at the front.
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if at >= horizon and len(self._seen) <= self._cfg.dedupe_max:
                return
            del self._seen[key]

    def _live(self) -> list[Entry]:
        return [
            Snapshot(
                at=self._now(),
                circuit=self.breaker.state.to_record(),
                seen=self._seen,
                cooldowns=self._cooldowns,
                actions=tuple(a.to_record() for a in self.pending.values()),
            )
        ]

    def _start(self, action: Action) -> None:
        self.history.started(
            ActionEvent(action.created_ms, action.id, action.kind, action.source, action.reason)
        )
        if action.kind != "cache_flush":
            # Committed already: the breaker's generation is this action's.
            old = self.reconciler.want(action, self.breaker.state.generation)
            if old is not None:
                # Never sent again; a restart drops it too (it is not the circuit's call).
                self.pending.pop(old.id, None)
                self.history.finished(old.id, "superseded")
            return
        task = asyncio.create_task(
            self._run(action, self._flushing), name=f"action-{action.kind}-{action.id}"
        )
        self._flushing = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, action: Action, previous: asyncio.Task[None] | None) -> None:
        if previous is not None and not previous.done():
            # wait, not await: neither call's cancellation may spread to the other.
            await asyncio.wait([previous])
        try:
            outcome = await self._actuator.run(action, lambda: self.history.attempted(action.id))
        except Exception as exc:  # a bug must not kill the lane; it is logged
            log.error("action.crashed", action=action.kind, action_id=action.id, exc_info=exc)
            return  # stays in the journal: the next start tries again
        await self._finished(action, outcome)

    async def _finished(self, action: Action, outcome: str) -> None:
        """An action ended: forget it, show it, and journal it so a restart does not repeat it."""
        self.pending.pop(action.id, None)
        self.history.finished(action.id, outcome)
        # A failure is logged; a restart repeats the call with the same Idempotency-Key.
        with contextlib.suppress(JournalError):
            done = Done(at=self._now(), done=(OutcomeRecord(action.id, outcome),))
            await self.journal.append(done)

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for running calls; cancel the rest (journaled)."""
        tasks = set(self._tasks)
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

    # -- restart --------------------------------------------------------------------

    async def restore(self) -> None:
        """Rebuild state from the journal, compact it, and resume unfinished calls."""
        circuit: CircuitRecord | None = None
        # The journal checked every entry's shape: what it yields is whole and typed.
        for entry in self.journal.replay():
            if isinstance(entry, Done):
                for d in entry.done:
                    call = self.pending.get(d.id)
                    if call is not None and call.kind != "cache_flush" and still_pending(entry, d):
                        continue  # an older version gave up on it: send it again
                    self.pending.pop(d.id, None)
                continue
            self.pending.update((a.id, Action.from_record(a)) for a in entry.actions)
            if isinstance(entry.circuit, CircuitRecord):
                circuit = entry.circuit
            self._seen.update(entry.seen)
            self._cooldowns.update(entry.cooldowns)
        now = self._now()
        self.breaker.commit(
            CircuitState.from_record(circuit)
            if circuit is not None
            else CircuitState(since_ms=now, reason="started without a journal")
        )
        self._expire(now)
        self._restore_intent()
        log.info(
            "journal.replayed",
            circuit=self.breaker.state.state,
            pending=len(self.pending),
            seen=len(self._seen),
        )
        # A full or read-only state directory is a degraded start, not a crash loop: the
        # old journal is intact, ``journal.problem`` says why, and writes are refused
        # (503) until the journal's watch sees the directory writable again.
        with contextlib.suppress(JournalError):
            await self.journal.rewrite(self._live)
        for action in self.pending.values():
            if action.kind == "cache_flush":
                log.warning("action.resumed", action=action.kind, action_id=action.id)
                self._start(action)

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
