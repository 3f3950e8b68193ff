"""The recent past of the action path, for people: bounded, in memory, newest first.

The journal is what the sidecar needs to survive a restart; this is what an operator
looking at the status page wants to read: the last actions with their outcomes and the
last circuit transitions. Bounded, so a flapping alert cannot grow it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

__all__ = ["ActionEvent", "History", "Transition"]


@dataclass(frozen=True, slots=True)
class ActionEvent:
    """One action: when it was decided, by whom, why, and how it ended (``running`` until then)."""

    at_ms: int
    action_id: str
    kind: str
    source: str
    reason: str
    outcome: str = "running"
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Transition:
    """The circuit entered ``state`` at ``at_ms``."""

    at_ms: int
    state: str
    reason: str
    source: str


class History:
    """The last ``size`` actions and circuit transitions."""

    def __init__(self, size: int = 50) -> None:
        self._actions: deque[ActionEvent] = deque(maxlen=size)
        self._transitions: deque[Transition] = deque(maxlen=size)

    def started(self, event: ActionEvent) -> None:
        """Record a decided action."""
        self._actions.append(event)

    def attempted(self, action_id: str) -> None:
        """Count one more attempt at calling the app for an action."""
        self._update(action_id, lambda e: replace(e, attempts=e.attempts + 1))

    def finished(self, action_id: str, outcome: str) -> None:
        """Record how an action ended (a no-op once it has aged out)."""
        self._update(action_id, lambda e: replace(e, outcome=outcome))

    def _update(self, action_id: str, change: Callable[[ActionEvent], ActionEvent]) -> None:
        # Newest first: the action being updated is almost always one of the last.
        for i in range(len(self._actions) - 1, -1, -1):
            if self._actions[i].action_id == action_id:
                self._actions[i] = change(self._actions[i])
                return

    def transition(self, t: Transition) -> None:
        """Record a circuit transition."""
        self._transitions.append(t)

    def actions(self) -> list[ActionEvent]:
        """Newest first."""
        return list(reversed(self._actions))

    def transitions(self) -> list[Transition]:
        """Newest first."""
        return list(reversed(self._transitions))
