"""What a delivery of alerts asks for, on top of what the dispatcher remembers.

``Memory`` is what the dispatcher remembers between deliveries: the notifications
already handled (``seen``, by alert instance and status, bounded by
``actions.dedupe_ttl`` and ``actions.dedupe_max``), when each cooldown key last acted
(``cooldowns``), and the firing breaks the fleet budget refused (``refused``, delivered
again by ``Dispatcher.reexamine`` until the budget allows or they resolve).

``Memory.plan_alert`` decides one alert of a delivery into a ``Plan``: a duplicate or a
stale firing is counted and dropped, a cooldown that runs skips its call, a resolution
is handed to the breaker, a firing break opens the circuit unless the budget refused.
Nothing here journals or calls anything: the dispatcher journals the plan, then adds its
``seen``, ``cooldowns`` and ``refused`` changes to the memory (``Memory.take``, from
``Dispatcher._submit``), and takes them back if the journal refused the plan. The
refused breaks are journaled like the rest (``RefusedRecord``), so that a restarted
sidecar examines them again instead of waiting for Alertmanager's next repeat.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

import msgspec
import structlog
from prometheus_client import CollectorRegistry, Counter

from sidecar.actions.action import AlertRecord, alert_from_record, alert_record, instance_key
from sidecar.actions.breaker import Breaker, CircuitState
from sidecar.actions.fleet import Verdict
from sidecar.actions.routing import Route
from sidecar.core.config_actions import ActionsConfig
from sidecar.core.errors import clip
from sidecar.core.model import ActionKind, Alert

__all__ = ["Memory", "Plan", "Refused", "RefusedRecord"]

log = structlog.get_logger(__name__)


class RefusedRecord(msgspec.Struct, frozen=True):
    """A refused break as the journal stores it: the alert, its source, and its route."""

    alert: AlertRecord
    source: str
    cooldown: Annotated[float, msgspec.Meta(ge=0)]
    """The route's cooldown in seconds: a break always routes to ``circuit_break``."""
    cooldown_key: str
    matched: str


@dataclass(frozen=True, slots=True)
class Refused:
    """A firing break the fleet budget refused, as it is delivered again."""

    alert: Alert
    route: Route
    source: str

    def to_record(self) -> RefusedRecord:
        """The journal record of this refused break."""
        r = self.route
        return RefusedRecord(
            alert_record(self.alert), self.source, r.cooldown, r.cooldown_key, r.matched
        )

    @classmethod
    def from_record(cls, record: RefusedRecord) -> Refused:
        """Read back a journal record; it is delivered again under the route it came with."""
        route = Route("circuit_break", record.cooldown, record.cooldown_key, record.matched)
        return cls(alert_from_record(record.alert), route, record.source)


_K = TypeVar("_K")
_V = TypeVar("_V")


def _overlay(memory: dict[_K, _V], changes: dict[_K, _V | None]) -> None:
    # None: the key goes (or was not there before the change taken back).
    for key, value in changes.items():
        if value is None:
            memory.pop(key, None)
        else:
            memory[key] = value


@dataclass(slots=True)
class Plan:
    """What one delivery decided so far, on top of the circuit ``state`` it started from."""

    state: CircuitState
    seen: dict[str, int] = field(default_factory=dict)
    cooldowns: dict[str, int] = field(default_factory=dict)
    calls: dict[ActionKind, list[Alert]] = field(
        default_factory=lambda: {"circuit_break": [], "cache_flush": []}
    )
    """The alerts each call of this delivery is made for; breaks first."""
    refused: dict[str, Refused | None] = field(default_factory=dict)
    """Changes to the refused breaks, by alert instance, latest last: None removes one."""
    duplicates: int = 0
    cooled_down: int = 0


class Memory:
    """Dedupe and cooldown memory, and the breaks the fleet budget refused."""

    def __init__(self, cfg: ActionsConfig, breaker: Breaker, registry: CollectorRegistry) -> None:
        self.cfg = cfg
        """Its bounds (``dedupe_ttl``, ``dedupe_max``); a reload replaces it."""
        self._breaker = breaker
        self.seen: dict[str, int] = {}
        """``instance:status`` of each notification handled, with when: first seen first."""
        self.cooldowns: dict[str, int] = {}
        """When each cooldown key last acted."""
        self.refused: dict[str, Refused] = {}
        """Firing breaks the fleet budget refused, by alert instance: first refused first."""
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

    def expire(self, now: int) -> None:
        """Forget what is older than ``dedupe_ttl`` or past ``dedupe_max``."""
        horizon = now - round(self.cfg.dedupe_ttl * 1000)
        # Insertion order is first-seen order: the oldest are at the front.
        while self.seen:
            key, at = next(iter(self.seen.items()))
            if at >= horizon and len(self.seen) <= self.cfg.dedupe_max:
                return
            del self.seen[key]

    def would_open(self, routed: Sequence[tuple[Alert, Route]]) -> bool:
        """Whether these alerts hold a firing break not handled yet (the budget's question)."""
        return any(
            route.action == "circuit_break"
            and alert.status == "firing"
            and f"{instance_key(alert)}:firing" not in self.seen
            for alert, route in routed
        )

    def refused_by_source(self) -> dict[str, list[tuple[Alert, Route]]]:
        """The refused breaks, grouped as they are delivered again: one delivery a source."""
        by_source: dict[str, list[tuple[Alert, Route]]] = {}
        for r in list(self.refused.values()):
            by_source.setdefault(r.source, []).append((r.alert, r.route))
        return by_source

    def take(
        self, seen: dict[str, int], cooldowns: dict[str, int], refused: dict[str, Refused | None]
    ) -> Callable[[], None]:
        """Make one decision's memory the ground of the next; returns what takes it back."""
        # A key of ``seen`` is never in the memory already: it would have been a duplicate.
        cooled = {k: self.cooldowns.get(k) for k in cooldowns}
        held = {k: self.refused.get(k) for k in refused}
        self.seen.update(seen)
        self.cooldowns.update(cooldowns)
        _overlay(self.refused, refused)

        def undo() -> None:
            for key in seen:
                self.seen.pop(key, None)
            _overlay(self.cooldowns, cooled)
            _overlay(self.refused, held)

        return undo

    def restore(
        self, seen: dict[str, int], cooldowns: dict[str, int], refused: dict[str, RefusedRecord]
    ) -> None:
        """What a journal's replay left; the refused breaks are examined again as before."""
        self.seen.update(seen)
        self.cooldowns.update(cooldowns)
        self.refused.update((k, Refused.from_record(r)) for k, r in refused.items())
        # A lower bound since (a config change), or a journal not ours: the oldest go.
        for key in list(self.refused)[: max(0, len(self.refused) - self.cfg.dedupe_max)]:
            del self.refused[key]

    def bound(self, plan: Plan) -> None:
        """Drop the oldest refused breaks past ``dedupe_max``, as changes of ``plan``."""
        if all(r is None for r in plan.refused.values()):
            return
        kept = [k for k in self.refused if k not in plan.refused or plan.refused[k] is not None]
        kept += [k for k, r in plan.refused.items() if r is not None and k not in self.refused]
        for key in kept[: max(0, len(kept) - self.cfg.dedupe_max)]:
            self._unrefuse(plan, key)

    def _refuse(self, plan: Plan, instance: str, refused: Refused) -> None:
        old = self.refused.get(instance)
        same = old is not None and (old.route, old.source) == (refused.route, refused.source)
        if same and instance not in plan.refused:
            return  # examined again: the journal knows it already
        plan.refused.pop(instance, None)
        plan.refused[instance] = refused

    def _unrefuse(self, plan: Plan, instance: str) -> None:
        plan.refused.pop(instance, None)
        if instance in self.refused:
            plan.refused[instance] = None

    def plan_alert(
        self,
        plan: Plan,
        alert: Alert,
        route: Route,
        now: int,
        *,
        verdict: Verdict | None,
        src: str,
    ) -> None:
        """Decide one routed alert of a delivery into ``plan``."""
        instance = instance_key(alert)
        if alert.status == "resolved" or route.action != "circuit_break":
            # Resolved, or routed elsewhere now (a reload): no longer a break to wait for.
            self._unrefuse(plan, instance)
        if route.action in ("none", "invalid", "foreign"):
            return
        key = f"{instance}:{alert.status}"
        # A firing notification that arrives after its own resolution is stale news.
        late = alert.status == "firing" and f"{instance}:resolved" in self.seen
        if late or key in self.seen or key in plan.seen:
            plan.duplicates += 1
            self._dedupe.inc()
            log.debug("alert.duplicate", alert_key=key)
            return
        plan.seen[key] = now
        if alert.status == "resolved":
            if route.action == "circuit_break":
                plan.state = self._breaker.resolve(plan.state, alert)
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
            self._refuse(plan, instance, Refused(alert, route, src))
            return
        self._unrefuse(plan, instance)
        plan.state, opened = self._breaker.fire(plan.state, alert, now)
        if opened:
            plan.cooldowns[route.cooldown_key] = now
        # Alerts that join a circuit this very delivery opened ride on the same call.
        if opened or plan.calls["circuit_break"]:
            plan.calls["circuit_break"].append(alert)

    def _cooling(self, plan: Plan, route: Route, alert: Alert, now: int) -> bool:
        if route.cooldown_key in plan.cooldowns:
            return False  # decided in this delivery: joins the same call
        last = self.cooldowns.get(route.cooldown_key)
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
