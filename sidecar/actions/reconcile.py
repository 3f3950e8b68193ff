"""The reconciler: the app's circuit converges on what the breaker decided.

The breaker decides a desired state (open or closed) at a generation, carried by one
action whose id is the Idempotency-Key (``CircuitState.calling``). The reconciler holds
that ``Intent`` and what the app last confirmed (``Observed``: a 2xx to a call, or the
app's state endpoint), and sends the intent until they agree:

- one call at a time, always for the current intent: a decision taken while a call is
  in flight supersedes the older intent, which is never sent again; the call in flight
  finishes first, so a break and a reset never overtake each other, and each call
  carries its generation so that the app can ignore an older one that arrives late;
- a call that fails (refused, timed out, 5xx, 429, even 4xx) is sent again after a
  capped backoff with jitter, without end, each retry logged and counted
  (``core.retry.converging``); a new decision cuts the wait short;
- an app restart the scrape stage reports (``app_restarted``) re-sends an open circuit:
  a new process starts closed;
- with ``app.state_path``, the app's own view is read every ``actions.reconcile.interval``
  and a disagreement is corrected;
- an app that applied a newer generation than the intent's (a 409 naming it, or its
  state endpoint: this sidecar's journal was lost while the app kept running) makes the
  intent take the next generation after the app's, journaled by the owner
  (``on_behind``), and it is sent again: generations never stay behind the app's.

Cache flushes are not a level and never come here: they stay fire-and-forget actions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from tenacity import RetryCallState

from sidecar.actions.action import Action
from sidecar.actions.actuator import Actuator, GenerationBehind
from sidecar.actions.history import History
from sidecar.actions.intent import Intent, LastReconcile, Observed
from sidecar.core.config_actions import ReconcileConfig
from sidecar.core.errors import ActionError, ActionRejected, ActionUnavailable, JournalError, clip
from sidecar.core.loops import Sleep, pause, wait_any
from sidecar.core.retry import converging
from sidecar.core.times import iso, now_ms

__all__ = ["CHECKS", "OUTCOMES", "TRIGGERS", "Reconciler"]

log = structlog.get_logger(__name__)

Trigger = Literal["decision", "start", "app_restart", "state_mismatch"]
TRIGGERS: tuple[Trigger, ...] = ("decision", "start", "app_restart", "state_mismatch")
"""Why the current intent is sent (again)."""
Outcome = Literal["confirmed", "rejected", "unavailable", "dry_run"]
OUTCOMES: tuple[Outcome, ...] = ("confirmed", "rejected", "unavailable", "dry_run")
"""How one circuit call ended."""
CHECKS = ("agree", "disagree", "failed")
"""What one read of the app's state endpoint found."""

OnDone = Callable[[Action, str], Awaitable[None]]
OnBehind = Callable[[Action, int], Awaitable[int | None]]
"""The app applied generation n, at or past ``action``'s: journal ``action`` at a newer
one and return it (None: ``action`` is no longer the circuit's call)."""


class Reconciler:
    """Sends the current ``Intent`` until the app confirms it; see the module docstring."""

    def __init__(
        self,
        cfg: ReconcileConfig,
        actuator: Actuator,
        registry: CollectorRegistry,
        *,
        history: History,
        on_done: OnDone,
        on_behind: OnBehind,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._cfg = cfg
        self._actuator = actuator
        self._history = history
        self._on_done = on_done
        self._on_behind = on_behind
        self._clock = clock
        self._sleep = sleep
        self.intent: Intent | None = None
        self.observed: Observed | None = None
        self.last: LastReconcile | None = None
        self.task: asyncio.Task[None] | None = None
        """The one task sending calls, while there is something to send."""
        self._due = False
        self._closing = False
        self._trigger: Trigger = "decision"
        self._attempts = 0
        self._wake = asyncio.Event()
        self._observed_gauge = Gauge(
            "leak_sidecar_circuit_observed_state",
            "The app's circuit as it last confirmed it: 1 open, 0 closed, -1 not known.",
            registry=registry,
        )
        self._observed_gauge.set(-1)
        self._calls = Counter(
            "leak_sidecar_reconcile",
            "Circuit calls made to bring the app to the desired state, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self._triggers = Counter(
            "leak_sidecar_reconcile_triggers",
            "Reasons the desired circuit state was sent to the app, by trigger.",
            ["trigger"],
            registry=registry,
        )
        self._checks = Counter(
            "leak_sidecar_reconcile_checks",
            "Reads of the app's state endpoint, by whether it agreed with the desired state.",
            ["result"],
            registry=registry,
        )
        for outcome in OUTCOMES:
            self._calls.labels(outcome)
        for trigger in TRIGGERS:
            self._triggers.labels(trigger)
        for result in CHECKS:
            self._checks.labels(result)

    def reconfigure(self, cfg: ReconcileConfig) -> None:
        """Use ``cfg``'s backoff and interval from the next wait on (a reload)."""
        self._cfg = cfg

    def _now(self) -> int:
        return now_ms(self._clock())

    @property
    def in_sync(self) -> bool:
        """Whether the app confirmed the current intent (or, with none, is not known open)."""
        if self.intent is None:
            return self.observed is None or self.observed.state == "closed"
        o = self.observed
        return not self._due and o is not None and o.state == self.intent.desired

    # -- what to send ---------------------------------------------------------------

    def want(self, action: Action, generation: int) -> Action | None:
        """A new decision: send ``action`` for ``generation``; returns the intent it superseded.

        The superseded action is one that the app has not confirmed: it is never sent again.
        """
        old = self.intent
        superseded = old.action if old is not None and self._due else None
        self.intent = Intent(action, generation)
        self._attempts = 0
        self._request("decision")
        if superseded is not None and superseded.id != action.id:
            log.info(
                "reconcile.superseded",
                action_id=superseded.id,
                by=action.id,
                generation=generation,
            )
            return superseded
        return None

    def restore(self, action: Action, generation: int, *, confirmed: bool) -> None:
        """The intent a restart found in the journal; sent again unless it was confirmed."""
        self.intent = Intent(action, generation)
        if confirmed:
            self._observe(Observed(self.intent.desired, generation, self._now(), "journal"))
        else:
            self._request("start")

    def app_restarted(self, reason: str) -> None:
        """The scrape stage saw the app restart: a new process starts closed."""
        intent = self.intent
        log.info(
            "reconcile.app_restarted",
            reason=reason,
            desired=None if intent is None else intent.desired,
        )
        if intent is None or intent.desired == "closed" or self._actuator.dry_run:
            return
        self._observe(None)
        self._request("app_restart")

    def _request(self, trigger: Trigger) -> None:
        self._due = True
        self._trigger = trigger
        self._triggers.labels(trigger).inc()
        self._wake.set()
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._converge(), name="reconcile-circuit")

    def _observe(self, observed: Observed | None) -> None:
        self.observed = observed
        if observed is None:
            self._observed_gauge.set(-1)
        else:
            self._observed_gauge.set(1 if observed.state == "open" else 0)

    # -- sending --------------------------------------------------------------------

    async def _converge(self) -> None:
        """Send the current intent until it is confirmed; only ``close`` or cancellation stop it."""
        if self._actuator.dry_run:
            await self._dry_run()
            return
        while self._due and not self._closing:
            policy = converging(
                self._cfg.initial_backoff,
                self._cfg.max_backoff,
                (ActionError,),
                event="reconcile.retry_scheduled",
                until=lambda: not self._due or self._closing,
                on_retry=self._on_retry,
                sleep=self._wait,
            )
            try:
                async for attempt in policy:
                    with attempt:
                        await self._send()
            except ActionError:
                pass  # nothing is due any more

    async def _dry_run(self) -> None:
        while self._due:
            intent = self.intent
            assert intent is not None  # a task is started only with an intent
            self._due = False
            outcome = await self._actuator.run(intent.action)
            self._calls.labels("dry_run").inc()
            self.last = LastReconcile(self._now(), "dry_run", self._trigger)
            await self._on_done(intent.action, outcome)

    async def _wait(self, seconds: float) -> None:
        """The backoff, cut short by a new decision or trigger."""
        await wait_any(self._sleep(seconds), self._wake.wait())

    def _on_retry(self, state: RetryCallState) -> None:
        log.debug("reconcile.waiting", attempt=state.attempt_number)

    async def _send(self) -> None:
        self._wake.clear()
        if self._closing:
            # Not sent: the journal keeps it unconfirmed, the next start sends it.
            raise ActionUnavailable("circuit", "", "the sidecar is shutting down")
        intent = self.intent
        assert intent is not None  # a task is started only with an intent
        action = intent.action
        self._attempts += 1
        self._history.attempted(action.id)
        try:
            await self._actuator.call(action, intent.generation)
        except ActionError as exc:
            outcome: Outcome = "rejected" if isinstance(exc, ActionRejected) else "unavailable"
            self._calls.labels(outcome).inc()
            self.last = LastReconcile(
                self._now(), outcome, self._trigger, self._attempts, clip(exc, 300)
            )
            if isinstance(exc, GenerationBehind):
                await self._catch_up(intent, exc.applied)
            raise
        now = self._now()
        self._calls.labels("confirmed").inc()
        self._observe(Observed(intent.desired, intent.generation, now, "call"))
        self.last = LastReconcile(now, "confirmed", self._trigger, self._attempts)
        if self.intent is intent:
            self._due = False
        log.info(
            "reconcile.confirmed",
            desired=intent.desired,
            generation=intent.generation,
            action_id=action.id,
            attempts=self._attempts,
            trigger=self._trigger,
        )
        await self._on_done(action, "success")

    # -- the app's own view ---------------------------------------------------------

    async def check(self) -> None:
        """Read the app's state endpoint once; correct it when it disagrees."""
        intent = self.intent
        if intent is None or self._due or self._actuator.dry_run:
            return  # nothing decided yet, or a call is under way: it will be confirmed
        try:
            seen = await self._actuator.observe()
        except ActionError as exc:
            self._checks.labels("failed").inc()
            log.debug("reconcile.check_failed", error=clip(exc, 300))
            return
        if self.intent is not intent or self._due:
            return  # a decision came meanwhile
        now = self._now()
        self._observe(Observed(seen.state, seen.generation, now, "state_endpoint"))
        if seen.state == intent.desired:
            self._checks.labels("agree").inc()
            return
        self._checks.labels("disagree").inc()
        self.last = LastReconcile(now, "disagreed", "state_mismatch")
        log.warning(
            "reconcile.state_mismatch",
            desired=intent.desired,
            generation=intent.generation,
            observed=seen.state,
            observed_generation=seen.generation,
        )
        self._attempts = 0
        if seen.generation is not None and seen.generation > intent.generation:
            await self._catch_up(intent, seen.generation)
        self._request("state_mismatch")

    async def _catch_up(self, intent: Intent, applied: int) -> None:
        """The app applied generation ``applied``, at or past ``intent``'s: the intent takes
        a newer one, journaled by the owner, so that the app accepts it when sent again."""
        try:
            generation = await self._on_behind(intent.action, applied)
        except JournalError:
            return  # logged by the journal; sent again as it is, caught up on the next 409
        if generation is None or self.intent is not intent:
            return  # a newer decision took over meanwhile: it is what is sent
        self.intent = Intent(intent.action, generation)
        log.warning(
            "reconcile.generation_behind",
            action_id=intent.action.id,
            app_generation=applied,
            was=intent.generation,
            generation=generation,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Check the app's state endpoint every ``interval`` (when it has one) until ``stop``."""
        if not self._actuator.observes:
            await stop.wait()
            return
        while not stop.is_set():
            try:
                await self.check()
            except Exception as exc:  # the loop must outlive any bug
                log.exception("reconcile.bug", error=clip(repr(exc)))
            await pause(stop, self._cfg.interval)

    def close(self) -> None:
        """Shutdown: send nothing new; a call in flight may finish, a backoff ends now."""
        self._closing = True
        self._wake.set()

    # -- views ----------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        """What GET /v1/circuit adds: observed, in sync, the last reconcile."""
        o, last = self.observed, self.last
        return {
            "observed": None
            if o is None
            else {
                "state": o.state,
                "generation": o.generation,
                "at": iso(o.at_ms),
                "via": o.via,
            },
            "in_sync": self.in_sync,
            "last_reconcile": None
            if last is None
            else {
                "at": iso(last.at_ms),
                "outcome": last.outcome,
                "trigger": last.trigger,
                "attempts": last.attempts,
                "error": last.error,
            },
        }
