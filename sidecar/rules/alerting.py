"""Rule evaluation: recording rules and the alert state machine of Prometheus 2.42.

``AlertingRule.eval`` follows ``rules/alerting.go`` step by step, so that a rule file
behaves here as it does in Prometheus and in ``promtool test rules``:

- each result sample becomes an alert keyed by its labels (``__name__`` dropped, rule
  labels expanded and set, an empty expansion removing the label, ``alertname`` set);
- a new alert is pending, and firing once it has been active for ``for``;
- a pending alert that leaves the result is dropped without a notification;
- a firing alert that leaves the result keeps firing for ``keep_firing_for``, then is
  resolved, kept, and re-sent as resolved for 15 minutes (``resolvedRetention``);
- more active alerts than the group's ``limit`` clears the rule's alerts and fails it;
- ``ALERTS`` and ``ALERTS_FOR_STATE`` samples are produced once the rule's ``for`` state
  has been restored after a start.

Times are integer milliseconds; ``None`` stands for Go's zero ``time.Time``, which is
not the Unix epoch (promtool evaluates at t=0).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from sidecar.core.errors import RuleError
from sidecar.core.model import LabelSet
from sidecar.rules.promql import SUBQUERY_STEP_MS, query_vector
from sidecar.rules.rulefmt import RuleSpec
from sidecar.rules.templates.expand import TemplateData
from sidecar.store import Store

__all__ = [
    "RESOLVED_RETENTION_MS",
    "ActiveAlert",
    "AlertState",
    "AlertingRule",
    "RecordingRule",
    "Rule",
]

RESOLVED_RETENTION_MS = 15 * 60 * 1000
"""How long a resolved alert is kept and re-sent (Prometheus's ``resolvedRetention``)."""


class AlertState(enum.IntEnum):
    """An alert's state; the order is Prometheus's (firing > pending > inactive)."""

    INACTIVE = 0
    PENDING = 1
    FIRING = 2

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(slots=True)
class ActiveAlert:
    """One alert instance of a rule (Prometheus's ``rules.Alert``)."""

    labels: LabelSet
    annotations: tuple[tuple[str, str], ...]
    state: AlertState
    value: float
    active_at: int
    fired_at: int | None = None
    resolved_at: int | None = None
    last_sent_at: int | None = None
    valid_until: int | None = None
    keep_firing_since: int | None = None

    def needs_sending(self, t: int, resend_delay_ms: int) -> bool:
        """Pending never; resolved since last sent always; otherwise every resend delay."""
        if self.state == AlertState.PENDING:
            return False
        if self.resolved_at is not None and (
            self.last_sent_at is None or self.resolved_at > self.last_sent_at
        ):
            return True
        return self.last_sent_at is None or self.last_sent_at + resend_delay_ms < t


def _vector(
    rule: RuleSpec, store: Store, t: int, subquery_step_ms: int
) -> Sequence[tuple[LabelSet, float]]:
    """Run the rule's expression; a scalar becomes one sample without labels."""
    result = rule.query.evaluate(store, t, subquery_step_ms=subquery_step_ms)
    if isinstance(result, float):
        return [((), result)]
    return result


def _largest(result: Sequence[tuple[LabelSet, float]]) -> float | None:
    # max() over NaN depends on order; a NaN is shown only when it is all there is.
    values = [v for _, v in result if not math.isnan(v)]
    if values:
        return max(values)
    return result[0][1] if result else None


def _set_labels(base: Iterable[tuple[str, str]], extra: Mapping[str, str]) -> LabelSet:
    merged = dict(base)
    for k, v in extra.items():
        # labels.Builder.Set: an empty value removes the label.
        if v:
            merged[k] = v
        else:
            merged.pop(k, None)
    return tuple(sorted(merged.items()))


@dataclass(eq=False)
class _RuleBase:
    spec: RuleSpec
    health: str = "unknown"
    last_error: str = ""
    evaluation_ms: float = 0.0
    evaluation_at: int | None = None
    last_value: float | None = None
    """The largest value of the expression's last result (None when it was empty)."""
    subquery_step_ms: int = SUBQUERY_STEP_MS
    """The step of a subquery that names none: the global evaluation interval, as in
    Prometheus (not the group's own interval)."""

    @property
    def name(self) -> str:
        """The rule's ``record`` or ``alert`` name."""
        return self.spec.name


@dataclass(eq=False)
class RecordingRule(_RuleBase):
    """``record:``: the result, renamed and relabelled, is written back to the store."""

    def eval(self, store: Store, t: int, limit: int) -> dict[LabelSet, float]:
        """Evaluate at ``t``; the samples to write. Raises ``RuleError``."""
        out: dict[LabelSet, float] = {}
        extra = {"__name__": self.spec.name, **dict(self.spec.labels)}
        result = _vector(self.spec, store, t, self.subquery_step_ms)
        self.last_value = _largest(result)
        for labels, value in result:
            key = _set_labels(labels, extra)
            if key in out:
                raise RuleError(
                    "vector contains metrics with the same labelset after applying rule labels"
                )
            out[key] = value
        if limit > 0 and len(out) > limit:
            raise RuleError(f"exceeded limit of {limit} with {len(out)} series")
        return out


@dataclass(eq=False)
class AlertingRule(_RuleBase):
    """``alert:``: the alert state machine of one rule."""

    external_labels: Mapping[str, str] = field(default_factory=dict)
    external_url: str = ""
    restored: bool = True
    active: dict[LabelSet, ActiveAlert] = field(default_factory=dict)
    nil_manager_url: bool = False
    """promtool's rule manager has no external URL: the template functions ``externalURL``
    and ``pathPrefix`` then fail as Go does on the nil pointer."""

    def _new_alerts(self, store: Store, t: int) -> dict[LabelSet, ActiveAlert]:
        alerts: dict[LabelSet, ActiveAlert] = {}
        result = _vector(self.spec, store, t, self.subquery_step_ms)
        self.last_value = _largest(result)
        # A template's `query` runs at the rule's evaluation time, as Prometheus runs it.
        query = partial(query_vector, store=store, t_ms=t, subquery_step_ms=self.subquery_step_ms)
        url = None if self.nil_manager_url else self.external_url
        for labels, value in result:
            data = TemplateData(
                dict(labels), self.external_labels, self.external_url, value, query, url
            )
            base = ((k, v) for k, v in labels if k != "__name__")
            expanded = {k: tmpl.expand(data) for k, tmpl in self.spec.label_templates}
            expanded["alertname"] = self.spec.name
            key = _set_labels(base, expanded)
            if key in alerts:
                raise RuleError(
                    "vector contains metrics with the same labelset after applying alert labels"
                )
            annotations = tuple(
                (k, tmpl.expand(data)) for k, tmpl in self.spec.annotation_templates
            )
            alerts[key] = ActiveAlert(key, annotations, AlertState.PENDING, value, active_at=t)
        return alerts

    def eval(self, store: Store, t: int, limit: int) -> dict[LabelSet, float]:
        """Evaluate at ``t``, advance every alert's state; the ALERTS samples to write."""
        alerts = self._new_alerts(store, t)
        for key, new in alerts.items():
            old = self.active.get(key)
            if old is not None and old.state != AlertState.INACTIVE:
                old.value = new.value
                old.annotations = new.annotations
                continue
            self.active[key] = new
        out: dict[LabelSet, float] = {}
        n_active = 0
        keep_for = self.spec.keep_firing_for_ms
        for key, a in list(self.active.items()):
            if key not in alerts:
                keep_firing = False
                if a.state == AlertState.FIRING and keep_for > 0:
                    if a.keep_firing_since is None:
                        a.keep_firing_since = t
                    keep_firing = t - a.keep_firing_since < keep_for
                if a.state == AlertState.PENDING or (
                    a.resolved_at is not None and t - a.resolved_at > RESOLVED_RETENTION_MS
                ):
                    del self.active[key]
                if a.state != AlertState.INACTIVE and not keep_firing:
                    a.state = AlertState.INACTIVE
                    a.resolved_at = t
                if not keep_firing:
                    continue
            else:
                a.keep_firing_since = None
            n_active += 1
            if a.state == AlertState.PENDING and t - a.active_at >= self.spec.for_ms:
                a.state = AlertState.FIRING
                a.fired_at = t
            if self.restored:
                out[self._series(a, "ALERTS", str(a.state))] = 1.0
                out[self._series(a, "ALERTS_FOR_STATE", None)] = float(a.active_at // 1000)
        if limit > 0 and n_active > limit:
            self.active = {}
            raise RuleError(f"exceeded limit of {limit} with {n_active} alerts")
        return out

    def _series(self, a: ActiveAlert, name: str, state: str | None) -> LabelSet:
        # Prometheus starts from the rule's unexpanded labels, then sets the alert's.
        merged = {k: v for k, v in self.spec.labels if v}
        merged.update(a.labels)
        merged["__name__"] = name
        merged["alertname"] = self.spec.name
        if state is not None:
            merged["alertstate"] = state
        return tuple(sorted(merged.items()))

    def state(self) -> AlertState:
        """The highest state among the rule's alerts."""
        return max((a.state for a in self.active.values()), default=AlertState.INACTIVE)

    def active_alerts(self) -> list[ActiveAlert]:
        """Pending and firing alerts (resolved ones kept for re-sending are left out)."""
        return [a for a in self.active.values() if a.resolved_at is None]

    def to_send(self, t: int, resend_delay_ms: int, interval_ms: int) -> list[ActiveAlert]:
        """Alerts due for (re-)sending at ``t``; marks them sent (``sendAlerts``)."""
        out = []
        # Valid for four resend delays (or intervals): two lost sends do not resolve it.
        delta = max(resend_delay_ms, interval_ms)
        for a in self.active.values():
            if a.needs_sending(t, resend_delay_ms):
                a.last_sent_at = t
                a.valid_until = t + 4 * delta
                out.append(dataclasses.replace(a))
        return out


Rule = RecordingRule | AlertingRule
