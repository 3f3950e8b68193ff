"""The action path's recent past, as the status page shows it."""

from __future__ import annotations

from sidecar.actions.history import ActionEvent, History, Transition


def test_actions_are_newest_first_with_attempts_and_outcome() -> None:
    """Attempts and the outcome land on the right action; the newest comes first."""
    h = History(size=3)
    h.started(ActionEvent(1, "a", "cache_flush", "rules", "alert X firing"))
    h.started(ActionEvent(2, "b", "circuit_break", "operator", "incident"))
    h.attempted("a")
    h.attempted("a")
    h.finished("a", "success")
    assert h.actions() == [
        ActionEvent(2, "b", "circuit_break", "operator", "incident"),
        ActionEvent(1, "a", "cache_flush", "rules", "alert X firing", "success", 2),
    ]


def test_history_is_bounded() -> None:
    """Only the last `size` actions and transitions are kept; updates to dropped ones are no-ops."""
    h = History(size=2)
    for i in range(5):
        h.started(ActionEvent(i, str(i), "cache_flush", "rules", "r"))
        h.transition(Transition(i, "open" if i % 2 else "closed", "r", "alert"))
    h.finished("0", "success")
    assert [e.action_id for e in h.actions()] == ["4", "3"]
    assert [t.at_ms for t in h.transitions()] == [4, 3]
