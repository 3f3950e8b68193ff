"""Has the condition that opened the circuit cleared, *with data present*?

The breaker asks this before an automatic reset. An alert that resolved because the
target went away or its series went stale has not cleared: nothing is known, and
resetting then would put load back on an app that may still be sick. ``Condition``
answers from the last scrape, the store and the embedded engine's rule groups.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from sidecar.core.model import Alert, ScrapeFacts
from sidecar.core.times import now_ms
from sidecar.rules.alerting import AlertingRule, AlertState
from sidecar.rules.groups import Group
from sidecar.rules.promql import LOOKBACK_MS
from sidecar.store import StoreView

__all__ = ["Condition", "ScrapeView"]


class ScrapeView(Protocol):
    """What the condition needs of the scraper: its last scrape, interval and timeout."""

    @property
    def last(self) -> ScrapeFacts: ...
    @property
    def interval(self) -> float: ...
    @property
    def timeout_s(self) -> float: ...


class Condition:
    """Implements the breaker's ``ConditionView`` from the scraper, the store and the rules."""

    def __init__(
        self,
        scraper: ScrapeView,
        store: StoreView,
        groups: Sequence[Group],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._scraper = scraper
        self._store = store
        self._groups = groups
        self._clock = clock

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
        rules = [
            r
            for g in self._groups
            for r in g.rules
            if isinstance(r, AlertingRule) and r.name == name
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
