"""The circuit's intent as values: what the app should have, what it confirmed, and
what a restart resumes.

``Intent`` is the desired state at a generation with the action carrying it (its id is
the Idempotency-Key of every call for that generation); ``Observed`` what the app last
confirmed; ``LastReconcile`` the last call or state check; ``resume`` finds the current
intent in a replayed journal. The ``Reconciler`` (``reconcile``) acts on them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from sidecar.actions.action import Action
from sidecar.actions.breaker import CircuitState, Desired
from sidecar.core.model import ActionKind

__all__ = ["Intent", "LastReconcile", "Observed", "Resumed", "resume"]


@dataclass(frozen=True, slots=True)
class Intent:
    """The circuit state the app should have, the generation, and the call carrying it."""

    action: Action
    generation: int

    @property
    def desired(self) -> Desired:
        """What the call asks for."""
        return "open" if self.action.kind == "circuit_break" else "closed"


@dataclass(frozen=True, slots=True)
class Observed:
    """What the app last confirmed of its circuit, when, and how we know."""

    state: Desired
    generation: int | None
    """None when the app's state endpoint does not say."""
    at_ms: int
    via: Literal["call", "state_endpoint", "journal"]


@dataclass(frozen=True, slots=True)
class LastReconcile:
    """The last circuit call or state check."""

    at_ms: int
    outcome: str
    trigger: str
    attempts: int = 0
    """Calls made for the current intent so far."""
    error: str = ""


@dataclass(frozen=True, slots=True)
class Resumed:
    """What a restart hands the reconciler (see ``resume``)."""

    state: CircuitState
    """The circuit, its call named if the journal did not name it."""
    action: Action | None
    """The call carrying the current generation; None when nothing was ever asked."""
    confirmed: bool
    superseded: tuple[str, ...]
    """Older unconfirmed circuit calls: never sent again."""


def resume(state: CircuitState, pending: Sequence[Action], new_id: Callable[[], str]) -> Resumed:
    """The current intent from a replayed journal: its state and its unfinished calls.

    The circuit names the call of its generation; before journal version 3 it names
    none, and the last unfinished circuit call decided is it. Without an unfinished one
    the intent was confirmed before the restart: it is rebuilt from the state (an open
    circuit of an older journal gets a call id now, so that every re-send after an app
    restart carries one key).
    """
    calls = [a for a in pending if a.kind != "cache_flush"]
    current = state.call_id
    if current is None and calls:
        current = calls[-1].id
        state = replace(state, call_id=current)
    superseded = tuple(a.id for a in calls if a.id != current)
    unfinished = next((a for a in calls if a.id == current), None)
    if unfinished is not None:
        return Resumed(state, unfinished, False, superseded)
    if state.call_id is None:
        if state.desired == "closed":
            return Resumed(state, None, True, superseded)
        state = state.calling(new_id())
    assert state.call_id is not None  # named above
    kind: ActionKind = "circuit_break" if state.desired == "open" else "circuit_reset"
    source = "operator" if state.source == "operator" else "breaker"
    alerts = tuple(h.alert for h in state.holders)
    action = Action(state.call_id, kind, state.reason, source, alerts, state.since_ms)
    return Resumed(state, action, True, superseded)
