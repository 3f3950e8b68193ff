"""The circuit state machine: closed, open (by an alert or by hand), held (by hand).

::

              alert fires / manual break              manual break, hold
    closed ---------------------------------> open ---------------------> held
      ^  ^                                    |  |                          |
      |  +---- auto-reset: every holding -----+  |                          |
      |        alert resolved, min_open passed,  |                          |
      |        condition cleared on fresh data   |                          |
      +---------------- manual reset ------------+--------------------------+

Transitions are pure: each takes a ``CircuitState`` and returns the next, so that the
dispatcher can plan a whole delivery, journal it, and only then ``commit`` it. A
resolution is not enough to reset: the injected ``ConditionView`` must also say the
condition is false on fresh data, because an alert that resolved since its target went
away (no data) says nothing about the leak. Opening again within ``probation`` of a
reset doubles the time it stays open (with jitter, up to ``max_open``), as Envoy grows
an ejection's duration, so that a flapping condition does not flap the app; the number
of doublings (``level``) stops at ``MAX_LEVEL``, past which the open time is ``max_open``
anyway, so that no number of re-opens, nor a journal, can make it overflow.

Desired state. Every transition that asks something of the app (an opening, a manual
break, a reset) takes the next ``generation`` and names the ``call_id`` of the action
that carries it: ``desired`` (open or closed) at ``generation`` is what the reconciler
(``reconcile``) makes the app match, with that id as the Idempotency-Key. Generations
only grow, and are journaled with the state, so they keep growing across restarts.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, get_args

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge

from sidecar.actions.action import (
    AlertRecord,
    alert_from_record,
    alert_json,
    alert_names,
    alert_record,
)
from sidecar.core.config_actions import BreakerConfig
from sidecar.core.model import Alert
from sidecar.core.times import iso

__all__ = [
    "MAX_HOLDERS",
    "MAX_LEVEL",
    "STATES",
    "Breaker",
    "CircuitRecord",
    "CircuitState",
    "ConditionView",
    "Desired",
    "Holder",
    "SourceKind",
    "StateName",
]

StateName = Literal["closed", "open", "held"]
Desired = Literal["open", "closed"]
"""What the app's circuit should be: ``held`` is ``open`` to the app."""
SourceKind = Literal["alert", "operator"]
STATES: tuple[StateName, ...] = get_args(StateName)

MAX_HOLDERS = 100
"""Holders kept at most; further firing alerts are counted
(``leak_sidecar_circuit_holders_dropped_total``), not kept."""

MAX_LEVEL = 64
"""Cap on ``level``: ``min_open * 2**64`` passes any ``max_open``, and stays a float."""


class ConditionView(Protocol):
    """The sidecar's own view of an alert's condition."""

    def cleared(self, alert: Alert) -> bool:
        """True only with fresh data on which the alert's condition is false."""
        ...


@dataclass(frozen=True, slots=True)
class Holder:
    """An alert that holds the circuit open (until it resolves and clears)."""

    alert: Alert
    """The latest instance of the alert: one holder per fingerprint."""

    @property
    def key(self) -> str:
        """The alert's fingerprint."""
        return self.alert.fingerprint

    @property
    def resolved(self) -> bool:
        """Whether its resolved notification has come."""
        return self.alert.status == "resolved"


class CircuitRecord(msgspec.Struct, frozen=True):
    """A ``CircuitState`` as the journal stores it; ``None`` times are written as null."""

    state: StateName
    since: int
    reason: str
    source: SourceKind
    holders: tuple[AlertRecord, ...]
    open_until: int | None
    level: int
    last_reset: int | None
    generation: int = 0
    """Absent before 0.3 (journal version 2 and older): 0."""
    call: str | None = None
    """The id of the action carrying ``generation``; absent before 0.3."""


@dataclass(frozen=True, slots=True)
class CircuitState:
    """Everything the breaker knows; journaled on every change, restored at start."""

    state: StateName = "closed"
    since_ms: int = 0
    reason: str = "initial state"
    source: SourceKind = "operator"
    holders: tuple[Holder, ...] = ()
    open_until_ms: int | None = None
    """Earliest automatic reset; None while closed or held."""
    level: int = 0
    """How many times in a row it opened again within probation of a reset."""
    last_reset_ms: int | None = None
    generation: int = 0
    """Grows by one with every decision that calls the app for the circuit."""
    call_id: str | None = None
    """The action carrying ``generation``: its id is the Idempotency-Key of every re-send."""

    @property
    def desired(self) -> Desired:
        """What the app's circuit should be."""
        return "closed" if self.state == "closed" else "open"

    def to_record(self) -> CircuitRecord:
        """The journal record."""
        return CircuitRecord(
            state=self.state,
            since=self.since_ms,
            reason=self.reason,
            source=self.source,
            holders=tuple(alert_record(h.alert) for h in self.holders),
            open_until=self.open_until_ms,
            level=self.level,
            last_reset=self.last_reset_ms,
            generation=self.generation,
            call=self.call_id,
        )

    @classmethod
    def from_record(cls, record: CircuitRecord) -> CircuitState:
        """Read back a journal record; a holder's key is the fingerprint it was stored with."""
        return cls(
            state=record.state,
            since_ms=record.since,
            reason=record.reason,
            source=record.source,
            holders=tuple(Holder(alert_from_record(a)) for a in record.holders),
            open_until_ms=record.open_until,
            # A journal may carry any number: the level is clamped, never trusted.
            level=min(max(record.level, 0), MAX_LEVEL),
            last_reset_ms=record.last_reset,
            generation=max(record.generation, 0),
            call_id=record.call,
        )

    def view(self) -> dict[str, Any]:
        """What GET /v1/circuit shows."""
        return {
            "state": self.state,
            "since": iso(self.since_ms),
            "reason": self.reason,
            "source": self.source,
            "held_by": [alert_json(h.alert) for h in self.holders],
            "earliest_reset": None if self.open_until_ms is None else iso(self.open_until_ms),
            "desired": self.desired,
            "generation": self.generation,
        }

    def calling(self, call_id: str) -> CircuitState:
        """This state as a new intent for the app: the next generation, carried by ``call_id``."""
        return replace(self, generation=self.generation + 1, call_id=call_id)


class Breaker:
    """Owns the committed ``CircuitState`` and computes transitions from any state."""

    def __init__(
        self,
        cfg: BreakerConfig,
        view: ConditionView,
        registry: CollectorRegistry,
        *,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.cfg = cfg
        self._view = view
        self._random = random
        self.state = CircuitState()
        self._gauge = Gauge(
            "leak_sidecar_circuit_state",
            "Circuit state of the app as the sidecar drives it, one-hot over the states.",
            ["state"],
            registry=registry,
        )
        self._holders_dropped = Counter(
            "leak_sidecar_circuit_holders_dropped_total",
            "Firing alerts not kept as holders of the circuit because MAX_HOLDERS were held.",
            registry=registry,
        )
        self._desired = Gauge(
            "leak_sidecar_circuit_desired_state",
            "What the sidecar wants the app's circuit to be: 1 open (or held), 0 closed.",
            registry=registry,
        )
        self._generation = Gauge(
            "leak_sidecar_circuit_generation",
            "Generation of the desired circuit state: it grows with every decision for the app.",
            registry=registry,
        )
        self._show(self.state)

    def commit(self, state: CircuitState) -> None:
        """Make ``state`` the current state (after it has been journaled)."""
        self.state = state
        self._show(state)

    def _show(self, state: CircuitState) -> None:
        for name in STATES:
            self._gauge.labels(name).set(1 if name == state.state else 0)
        self._desired.set(1 if state.desired == "open" else 0)
        self._generation.set(state.generation)

    def _open_for_ms(self, level: int) -> int:
        if level <= 0:
            return round(self.cfg.min_open * 1000)
        # Jitter only ever lengthens, so that min_open stays a minimum.
        doubled = self.cfg.min_open * (1 << min(level, MAX_LEVEL))
        grown = doubled * (1 + self.cfg.jitter * self._random())
        return round(min(grown, self.cfg.max_open) * 1000)

    def _opening(
        self, s: CircuitState, now: int, reason: str, source: SourceKind, held: bool
    ) -> CircuitState:
        recent = s.last_reset_ms is not None and now - s.last_reset_ms < self.cfg.probation * 1000
        level = min(s.level + 1, MAX_LEVEL) if recent else 0
        return replace(
            s,
            state="held" if held else "open",
            since_ms=now,
            reason=reason,
            source=source,
            open_until_ms=None if held else now + self._open_for_ms(level),
            level=level,
        )

    def fire(self, s: CircuitState, alert: Alert, now: int) -> tuple[CircuitState, bool]:
        """A ``circuit_break`` alert fires; True when this opens the circuit (call the app)."""
        holders = _holding(s.holders, alert)
        if len(holders) > MAX_HOLDERS:
            # Bounded: the state is journaled, shown and rewritten on every change. The
            # alerts past the cap still open a closed circuit but do not hold it.
            holders = s.holders
            self._holders_dropped.inc()
        if s.state != "closed":
            return replace(s, holders=holders), False
        reason = f"alert {alert_names((alert,))} firing"
        opened = self._opening(s, now, reason, "alert", held=False)
        return replace(opened, holders=holders), True

    def resolve(self, s: CircuitState, alert: Alert) -> CircuitState:
        """A holding alert resolved: remember it; the reset waits for ``tick``."""
        if all(h.key != alert.fingerprint for h in s.holders):
            return s
        return replace(s, holders=_holding(s.holders, alert))

    def manual_break(self, s: CircuitState, reason: str, hold: bool, now: int) -> CircuitState:
        """An operator breaks; ``hold`` keeps it open until a manual reset."""
        if s.state == "closed":
            return self._opening(s, now, reason, "operator", held=hold)
        if s.state == "held" or hold:
            # Holding an open circuit stops its automatic reset; it stays open since then.
            return replace(s, state="held", reason=reason, source="operator", open_until_ms=None)
        until = max(s.open_until_ms or now, now + self._open_for_ms(s.level))
        return replace(s, reason=reason, source="operator", open_until_ms=until)

    def reset(self, s: CircuitState, reason: str, source: SourceKind, now: int) -> CircuitState:
        """Close the circuit, forget its holders, and start probation."""
        return replace(
            s,
            state="closed",
            since_ms=now,
            reason=reason,
            source=source,
            holders=(),
            open_until_ms=None,
            last_reset_ms=now,
        )

    def blocked(self, s: CircuitState, now: int) -> str | None:
        """Why an automatic reset cannot happen now, or None when it is due."""
        if s.state != "open":
            return "closed" if s.state == "closed" else "held by an operator"
        firing = [h for h in s.holders if not h.resolved]
        if firing:
            return f"{len(firing)} holding alert(s) still firing"
        if s.open_until_ms is not None and now < s.open_until_ms:
            return "min_open not passed"
        stale = alert_names(h.alert for h in s.holders if not self._view.cleared(h.alert))
        if stale:
            return f"condition not cleared on fresh data for {stale}"
        return None


def _holding(holders: tuple[Holder, ...], alert: Alert) -> tuple[Holder, ...]:
    """Holders with ``alert`` recorded, one per fingerprint.

    A newer instance of the same alert (a later ``startsAt``) replaces the older one,
    whose resolution may never be sent; news about an older instance is ignored.
    """
    key = alert.fingerprint
    for h in holders:
        if h.key == key:
            if alert.starts_at < h.alert.starts_at:
                return holders
            return tuple(Holder(alert) if x.key == key else x for x in holders)
    return (*holders, Holder(alert))
