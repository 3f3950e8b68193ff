"""The sidecar's own view of the app, as the breaker and the status page need it.

``Condition`` answers the breaker's question before an automatic reset: has the
condition that opened the circuit cleared, *with data present*? An alert that resolved
because the target went away or its series went stale has not cleared: nothing is
known, and resetting then would put load back on an app that may still be sick.

``StatusAdapter`` builds the status page's ``StatusView`` from the stages' state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

from sidecar.action_path import ActionPath
from sidecar.alerting import AlertingRule, AlertState
from sidecar.model import Alert, labelset, now_ms
from sidecar.promql import LOOKBACK_MS
from sidecar.rules import RuleEngine
from sidecar.scrape import ScrapeFacts, Scraper
from sidecar.status import (
    ActionRecord,
    ActiveAlert,
    BreakerEvent,
    BreakerStatus,
    RuleHealth,
    RuleState,
    RuleStatus,
    StatusView,
    TargetStatus,
    chart_series,
)
from sidecar.store import Store

__all__ = ["Condition", "ScrapeView", "StatusAdapter", "rule_metric_names"]

_RECENT = 20  # actions and transitions shown on the page
_STATES: dict[AlertState, RuleState] = {
    AlertState.INACTIVE: "inactive",
    AlertState.PENDING: "pending",
    AlertState.FIRING: "firing",
}


class ScrapeView(Protocol):
    """What the condition needs of the scraper: its last scrape, interval and timeout."""

    last: ScrapeFacts
    interval: float
    timeout_s: float


def rule_metric_names(engine: RuleEngine) -> list[str]:
    """Every metric name the loaded rules select, in rule order, once each."""
    names: dict[str, None] = {}
    for g in engine.groups:
        for rule in g.rules:
            names.update(dict.fromkeys(sorted(rule.spec.query.metric_names)))
    return list(names)


class Condition:
    """Implements the breaker's ``ConditionView`` from the scraper, the store and the rules.

    ``engine`` is set once the rule engine exists: it is built after the action path,
    whose receiver it delivers to.
    """

    def __init__(
        self,
        scraper: ScrapeView,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._scraper = scraper
        self._store = store
        self._clock = clock
        self.engine: RuleEngine | None = None

    def _fresh(self, now: int) -> bool:
        last = self._scraper.last
        if last.up is not True or last.time_ms is None:
            return False
        # Two effective intervals plus the timeout: one late scrape is not "no data".
        budget_ms = round((2 * self._scraper.interval + self._scraper.timeout_s) * 1000)
        return now - last.time_ms <= budget_ms

    def _has_data(self, names: Iterable[str], now: int) -> bool:
        for name in names:
            if not any(
                not s.stale and (last := s.last()) is not None and now - last[0] <= LOOKBACK_MS
                for s in self._store.by_name(name)
            ):
                return False
        return True

    def cleared(self, alert: Alert) -> bool:
        """True only with fresh data on which the alert's condition no longer holds."""
        now = now_ms(self._clock())
        if not self._fresh(now):
            return False
        name = alert.labels.get("alertname", "")
        groups = self.engine.groups if self.engine is not None else []
        rules = [
            r for g in groups for r in g.rules if isinstance(r, AlertingRule) and r.name == name
        ]
        # An alert only a fleet Prometheus knows: its resolution is trusted once the
        # sidecar itself has fresh data from the app.
        for rule in rules:
            if not self._has_data(rule.spec.query.metric_names, now):
                return False
            if rule.health != "ok":
                return False
            for a in rule.active.values():
                if a.state != AlertState.INACTIVE and set(a.labels) <= set(alert.labels.items()):
                    return False
        return True


class StatusAdapter:
    """Implements the status page's ``StatusSource``."""

    def __init__(
        self,
        scraper: Scraper,
        engine: RuleEngine,
        path: ActionPath,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._scraper = scraper
        self._engine = engine
        self._path = path
        self._store = store
        self._clock = clock
        self._names = rule_metric_names(engine)

    def status(self) -> StatusView:
        """The page's whole content, read now."""
        now = now_ms(self._clock())
        last = self._scraper.last
        target = TargetStatus(
            url=last.url,
            health=last.health,
            last_scrape_ms=last.time_ms,
            duration_s=last.duration_s,
            body_bytes=last.body_bytes,
            series=last.series,
            error=last.error,
            interval_s=last.interval_s,
        )
        rules: list[RuleStatus] = []
        alerts: list[ActiveAlert] = []
        for g in self._engine.groups:
            for rule in g.rules:
                health: RuleHealth = (
                    "ok" if rule.health == "ok" else ("err" if rule.health == "err" else "unknown")
                )
                state: RuleState | None = None
                if isinstance(rule, AlertingRule):
                    state = _STATES[rule.state()]
                    alerts.extend(
                        ActiveAlert(
                            labels=a.labels,
                            state="firing" if a.state == AlertState.FIRING else "pending",
                            since_ms=a.active_at,
                            value=a.value,
                            summary=dict(a.annotations).get("summary", ""),
                        )
                        for a in rule.active_alerts()
                    )
                rules.append(
                    RuleStatus(
                        group=g.spec.name,
                        name=rule.name,
                        kind="alerting" if state is not None else "recording",
                        expr=rule.spec.expr,
                        state=state,
                        health=health,
                        last_value=rule.last_value,
                        last_eval_ms=rule.evaluation_at,
                        last_error=rule.last_error,
                    )
                )
        circuit = self._path.breaker.state
        history = self._path.dispatcher.history
        breaker = BreakerStatus(
            state=circuit.state,
            since_ms=circuit.since_ms or None,
            reason=circuit.reason,
            source=circuit.source,
            holders=tuple(labelset(h.alert.labels) for h in circuit.holders),
            earliest_reset_ms=circuit.open_until_ms,
            dry_run=self._path.cfg.breaker.dry_run,
            history=tuple(
                BreakerEvent(t.at_ms, t.state, t.reason, t.source)  # type: ignore[arg-type]
                for t in history.transitions()[:_RECENT]
            ),
        )
        actions = tuple(
            ActionRecord(e.at_ms, e.kind, e.source, e.reason, e.outcome, e.attempts)
            for e in history.actions()[:_RECENT]
        )
        charts = chart_series(
            self._store, self._names, now_ms=now, window_ms=self._store.retention_ms
        )
        return StatusView(
            now_ms=now,
            target=target,
            rules=tuple(rules),
            alerts=tuple(alerts),
            breaker=breaker,
            actions=actions,
            charts=charts,
        )
