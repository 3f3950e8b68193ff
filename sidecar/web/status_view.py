"""What the status page shows: a tree of small frozen values, built on each request.

The page knows nothing of the stages' internals. It shows a ``StatusView`` (target,
rules, alerts, breaker, actions, charts) that a ``StatusSource`` builds on demand;
``web.status.StatusAdapter`` implements that source by adapting each stage's state, so
a stage can change shape without touching the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from sidecar.core.model import LabelSet
from sidecar.web.svgchart import ChartSet

__all__ = [
    "ActionRecord",
    "ActiveAlert",
    "BreakerEvent",
    "BreakerStatus",
    "CircuitName",
    "ReconcileStatus",
    "RuleHealth",
    "RuleState",
    "RuleStatus",
    "StatusSource",
    "StatusView",
    "TargetHealth",
    "TargetStatus",
]

TargetHealth = Literal["up", "down", "unknown"]
RuleState = Literal["inactive", "pending", "firing"]
RuleHealth = Literal["ok", "err", "unknown"]
CircuitName = Literal["closed", "open", "held"]


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """The app's expvar endpoint as the scraper last saw it."""

    url: str
    health: TargetHealth = "unknown"
    """``unknown`` until the first scrape has finished."""
    last_scrape_ms: int | None = None
    duration_s: float | None = None
    body_bytes: int | None = None
    series: int | None = None
    """Samples the last successful scrape produced."""
    error: str = ""
    interval_s: float | None = None


@dataclass(frozen=True, slots=True)
class RuleStatus:
    """One loaded rule and its last evaluation."""

    group: str
    name: str
    kind: Literal["alerting", "recording"]
    expr: str
    state: RuleState | None = None
    """The alerting rule's state; ``None`` for a recording rule."""
    health: RuleHealth = "unknown"
    last_value: float | None = None
    """The expression's last result (its largest sample when it gave several)."""
    last_eval_ms: int | None = None
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    """One pending or firing alert, from the embedded rules or from Alertmanager."""

    labels: LabelSet
    state: Literal["pending", "firing"]
    since_ms: int
    value: float | None = None
    summary: str = ""


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """One change of circuit state, for the history table."""

    at_ms: int
    state: CircuitName
    reason: str
    source: str


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """The circuit as the breaker holds it now, and its recent changes (newest first)."""

    state: CircuitName = "closed"
    since_ms: int | None = None
    reason: str = ""
    source: str = ""
    holders: tuple[LabelSet, ...] = ()
    """The labels of each alert holding the circuit open."""
    earliest_reset_ms: int | None = None
    """When an automatic reset becomes possible; ``None`` while closed or held."""
    dry_run: bool = False
    """Actions are logged and journaled but the app is not called."""
    history: tuple[BreakerEvent, ...] = ()
    desired: Literal["open", "closed"] = "closed"
    """What the app's circuit should be (``held`` is ``open`` to the app)."""
    generation: int = 0
    observed: Literal["open", "closed"] | None = None
    """What the app last confirmed; ``None`` while not known."""
    observed_generation: int | None = None
    observed_ms: int | None = None
    in_sync: bool = True
    """The app confirmed the desired state."""
    reconcile: ReconcileStatus | None = None
    """The last call or state check that tried to bring the app to the desired state."""
    fleet: str = ""
    """The fleet budget's last word (``PANIC`` first in panic mode); empty when it is off."""


@dataclass(frozen=True, slots=True)
class ReconcileStatus:
    """The last reconcile: when, how it ended, why it ran, calls so far, the error."""

    at_ms: int
    outcome: str
    trigger: str
    attempts: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One action the sidecar decided, and how it ended (newest first in the view)."""

    at_ms: int
    action: str
    source: str
    reason: str
    outcome: str
    """``success``, ``rejected``, ``gave_up``, ``dry_run``, or ``pending`` while running."""
    attempts: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class StatusView:
    """Everything the page shows, taken at ``now_ms``."""

    now_ms: int
    target: TargetStatus
    rules: tuple[RuleStatus, ...] = ()
    alerts: tuple[ActiveAlert, ...] = ()
    breaker: BreakerStatus = field(default_factory=BreakerStatus)
    actions: tuple[ActionRecord, ...] = ()
    charts: ChartSet = field(default_factory=ChartSet)
    window_ms: int | None = None
    """The window the reader chose for the charts; None: the data there is."""
    retention_ms: int | None = None
    """The longest window the charts can show (the store's retention)."""


class StatusSource(Protocol):
    """Builds the view on each request; must not block (it runs on the event loop)."""

    @property
    def retention_ms(self) -> int:
        """The history kept per series: the longest window a chart can show."""
        ...

    def status(self, window_ms: int | None = None) -> StatusView:
        """The current state of every stage; charts over ``window_ms`` back from now, or
        with None over the data there is."""
        ...
