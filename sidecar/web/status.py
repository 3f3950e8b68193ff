"""The status page, GET /: what the sidecar sees and did, on one server-rendered page.

``StatusAdapter`` builds the page's ``StatusView`` (``web.status_view``) from the
stages' state on each request; ``status_render`` turns it into HTML.

The page is plain HTML with inline CSS and inline SVG: no script, no external asset, so
it works through a port-forward, in a locked-down browser and in a terminal browser.
``?window=15m`` (a Prometheus duration, up to the history the store keeps) charts that
window back from now; without it the charts span the data there is. A bad value is a
400 that says what was expected.

Every string on it may come from an attacker (label values are chosen by the app and by
alert senders), so the renderer escapes at every interpolation and the response carries
a Content-Security-Policy that forbids scripts in case one ever slips through.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from aiohttp import web

from sidecar.actions.path import ActionPath
from sidecar.core.durations import format_duration_ms, parse_duration_ms
from sidecar.core.errors import clip
from sidecar.core.model import labelset
from sidecar.core.times import now_ms
from sidecar.rules.alerting import AlertingRule, AlertState, Rule
from sidecar.rules.condition import ScrapeView
from sidecar.rules.groups import Group
from sidecar.store import Store
from sidecar.web.status_view import (
    ActionRecord,
    ActiveAlert,
    BreakerEvent,
    BreakerStatus,
    ReconcileStatus,
    RuleHealth,
    RuleState,
    RuleStatus,
    StatusSource,
    StatusView,
    TargetStatus,
)
from sidecar.web.svgchart import chart_series
from sidecar.web.thresholds import MEMORY_LIMIT_METRIC, chart_refs

__all__ = ["StatusAdapter", "parse_window", "routes", "rule_metric_names"]

_RECENT = 20  # actions and transitions shown on the page
_STATES: dict[AlertState, RuleState] = {
    AlertState.INACTIVE: "inactive",
    AlertState.PENDING: "pending",
    AlertState.FIRING: "firing",
}


def rule_metric_names(groups: Sequence[Group]) -> list[str]:
    """Every metric name the loaded rules select, in rule order, once each; the memory
    limit is drawn on the charts of what is compared with it, not charted alone."""
    names: dict[str, None] = {}
    for g in groups:
        for rule in g.rules:
            names.update(dict.fromkeys(sorted(rule.spec.query.metric_names)))
    names.pop(MEMORY_LIMIT_METRIC, None)
    return list(names)


def parse_window(text: str, max_ms: int) -> int:
    """``?window=``: a Prometheus duration from 1s to ``max_ms``; ``ValueError`` saying
    what was expected and what came."""
    expected = f"expected a duration such as 15m, from 1s to {format_duration_ms(max_ms)}"
    try:
        ms = parse_duration_ms(text)
    except ValueError:
        raise ValueError(f"window: {expected}, got {clip(text, 40)!r}") from None
    if not 1000 <= ms <= max_ms:
        raise ValueError(f"window: {expected} (the history kept), got {clip(text, 40)!r}")
    return ms


# Defence in depth behind the escaping: even injected markup could not run a script,
# load anything or send a form anywhere.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def routes(source: StatusSource, *, refresh_s: int = 10) -> list[web.RouteDef]:
    """GET / (and HEAD /): the status page, reloading itself every ``refresh_s`` (0: never)."""
    if refresh_s < 0:
        raise ValueError(f"refresh_s must be 0 (off) or positive, got {refresh_s}")

    async def page(request: web.Request) -> web.Response:
        window_ms = None
        if "window" in request.query:
            try:
                window_ms = parse_window(request.query["window"], source.retention_ms)
            except ValueError as exc:
                return web.Response(status=400, text=f"{exc}\n", headers=_HEADERS)
        # Loaded by the first view of the page, not at start: the HTML and SVG renderers
        # (about 0.5 MiB) are resident in every pod only once someone looks.
        from sidecar.web.status_render import render_page  # noqa: PLC0415

        body = render_page(source.status(window_ms), refresh_s=refresh_s)
        return web.Response(text=body, content_type="text/html", charset="utf-8", headers=_HEADERS)

    return [web.get("/", page)]


class StatusAdapter:
    """Implements the status page's ``StatusSource``."""

    def __init__(
        self,
        scraper: ScrapeView,
        groups: Sequence[Group],
        path: ActionPath,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._scraper = scraper
        self._groups = groups
        self._path = path
        self._store = store
        self._clock = clock

    @property
    def retention_ms(self) -> int:
        """The history the store keeps per series."""
        return self._store.retention_ms

    def _memory_limit(self, now: int) -> float | None:
        """The newest value of the limit series; a staleness marker is no value."""
        for s in self._store.by_name(MEMORY_LIMIT_METRIC):
            _, vs, i, j = s.window(now - self._store.retention_ms, now)
            return next((vs[k] for k in range(j - 1, i - 1, -1) if math.isfinite(vs[k])), None)
        return None

    def _target(self) -> TargetStatus:
        """The last scrape of the app."""
        last = self._scraper.last
        return TargetStatus(
            url=last.url,
            health=last.health,
            last_scrape_ms=last.time_ms,
            duration_s=last.duration_s,
            body_bytes=last.body_bytes,
            series=last.series,
            error=last.error,
            interval_s=last.interval_s,
        )

    def _rules(self) -> tuple[tuple[RuleStatus, ...], tuple[ActiveAlert, ...]]:
        """Every loaded rule, in group order, and the alerts of the alerting ones."""
        rules: list[RuleStatus] = []
        alerts: list[ActiveAlert] = []
        for g in self._groups:
            for rule in g.rules:
                state: RuleState | None = None
                if isinstance(rule, AlertingRule):
                    state = _STATES[rule.state()]
                    alerts.extend(_active_alerts(rule))
                rules.append(_rule_status(g, rule, state))
        return tuple(rules), tuple(alerts)

    def _breaker(self) -> BreakerStatus:
        """The circuit as the breaker drives it and as the app last confirmed it."""
        circuit = self._path.breaker.state
        rec = self._path.reconciler
        seen, tried = rec.observed, rec.last
        return BreakerStatus(
            state=circuit.state,
            since_ms=circuit.since_ms or None,
            reason=circuit.reason,
            source=circuit.source,
            holders=tuple(labelset(h.alert.labels) for h in circuit.holders),
            earliest_reset_ms=circuit.open_until_ms,
            dry_run=self._path.cfg.breaker.dry_run,
            fleet=""
            if self._path.dispatcher.budget is None
            else self._path.dispatcher.budget.status(),
            history=tuple(
                BreakerEvent(t.at_ms, t.state, t.reason, t.source)  # type: ignore[arg-type]
                for t in self._path.dispatcher.history.transitions()[:_RECENT]
            ),
            desired=circuit.desired,
            generation=circuit.generation,
            observed=None if seen is None else seen.state,
            observed_generation=None if seen is None else seen.generation,
            observed_ms=None if seen is None else seen.at_ms,
            in_sync=rec.in_sync,
            reconcile=None
            if tried is None
            else ReconcileStatus(
                tried.at_ms, tried.outcome, tried.trigger, tried.attempts, tried.error
            ),
        )

    def status(self, window_ms: int | None = None) -> StatusView:
        """The page's whole content, read now; charts over ``window_ms`` or the data."""
        now = now_ms(self._clock())
        target = self._target()
        rules, alerts = self._rules()
        breaker = self._breaker()
        actions = tuple(
            ActionRecord(e.at_ms, e.kind, e.source, e.reason, e.outcome, e.attempts)
            for e in self._path.dispatcher.history.actions()[:_RECENT]
        )
        alerting = [
            (r.name, r.spec.expr) for g in self._groups for r in g.rules
            if isinstance(r, AlertingRule)
        ]  # fmt: skip
        charts = chart_series(
            # Read per page: a reload replaces the groups in place.
            self._store,
            rule_metric_names(self._groups),
            now_ms=now,
            window_ms=window_ms or self._store.retention_ms,
            fit=window_ms is None,
            refs=chart_refs(alerting, self._memory_limit(now)),
        )
        return StatusView(
            now_ms=now,
            target=target,
            rules=rules,
            alerts=alerts,
            breaker=breaker,
            actions=actions,
            charts=charts,
            window_ms=window_ms,
            retention_ms=self._store.retention_ms,
        )


def _active_alerts(rule: AlertingRule) -> list[ActiveAlert]:
    """The rule's pending and firing alerts."""
    return [
        ActiveAlert(
            labels=a.labels,
            state="firing" if a.state == AlertState.FIRING else "pending",
            since_ms=a.active_at,
            value=a.value,
            summary=dict(a.annotations).get("summary", ""),
        )
        for a in rule.active_alerts()
    ]


def _rule_status(g: Group, rule: Rule, state: RuleState | None) -> RuleStatus:
    """One rule's row: alerting when it has a ``state``, recording without."""
    health: RuleHealth = (
        "ok" if rule.health == "ok" else ("err" if rule.health == "err" else "unknown")
    )
    return RuleStatus(
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
