"""GET /v1/rules and GET /v1/alerts, shaped like Prometheus's /api/v1/rules and /api/v1/alerts.

The bodies are Prometheus 2.42's (``web/api/v1/api.go``), so tools and dashboards that
read Prometheus's rule state read the sidecar's: ``{"status": "success", "data": ...}``,
groups with ``interval``/``limit``/``evaluationTime``/``lastEvaluation``, rules with
``health``/``lastError``/``type``, alerts with ``state``/``activeAt`` and the value
printed as Go's ``strconv.FormatFloat(v, 'e', -1, 64)``. Times are RFC 3339 in UTC;
a rule never evaluated shows Go's zero time ``0001-01-01T00:00:00Z``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from sidecar.core.times import go_rfc3339
from sidecar.gocompat.gofmt import go_format_e
from sidecar.rules.alerting import ActiveAlert, AlertingRule, Rule
from sidecar.rules.groups import Group
from sidecar.web.bodies import json_error

__all__ = ["routes"]


def _alert(a: ActiveAlert) -> dict[str, Any]:
    out: dict[str, Any] = {
        "labels": dict(a.labels),
        "annotations": dict(a.annotations),
        "state": str(a.state),
        "activeAt": go_rfc3339(a.active_at),
        "value": go_format_e(a.value),
    }
    if a.keep_firing_since is not None:
        out["keepFiringSince"] = go_rfc3339(a.keep_firing_since)
    return out


def _rule(rule: Rule, want: str) -> dict[str, Any] | None:
    common = {
        "name": rule.name,
        "query": rule.spec.query.text,
        "labels": dict(rule.spec.labels),
        "health": rule.health,
        "evaluationTime": rule.evaluation_ms / 1000,
        "lastEvaluation": go_rfc3339(rule.evaluation_at),
    }
    if rule.last_error:
        common["lastError"] = rule.last_error
    if isinstance(rule, AlertingRule):
        if want == "record":
            return None
        return {
            "state": str(rule.state()),
            **common,
            "duration": rule.spec.for_ms / 1000,
            "keepFiringFor": rule.spec.keep_firing_for_ms / 1000,
            "annotations": dict(rule.spec.annotations),
            "alerts": [_alert(a) for a in rule.active_alerts()],
            "type": "alerting",
        }
    if want == "alert":
        return None
    if not common["labels"]:
        del common["labels"]
    return {**common, "type": "recording"}


def _group(g: Group, want: str) -> dict[str, Any]:
    rules = [r for r in (_rule(rule, want) for rule in g.rules) if r is not None]
    return {
        "name": g.spec.name,
        "file": g.spec.file,
        "rules": rules,
        "interval": g.interval_ms / 1000,
        "limit": g.spec.limit,
        "evaluationTime": g.evaluation_s,
        "lastEvaluation": go_rfc3339(g.last_evaluation_ms),
    }


def routes(groups: Sequence[Group]) -> list[web.RouteDef]:
    """The two read-only routes over the rule groups' state."""

    async def rules(request: web.Request) -> web.Response:
        # Sorted per request: a reload replaces the groups in place.
        ordered = sorted(groups, key=lambda g: (g.spec.file, g.spec.name))
        want = request.query.get("type", "").lower()
        if want not in ("", "alert", "record"):
            return json_error(
                400,
                f'invalid parameter "type": not supported value "{want}"',
                errorType="bad_data",
            )
        return web.json_response(
            {"status": "success", "data": {"groups": [_group(g, want) for g in ordered]}}
        )

    async def alerts(request: web.Request) -> web.Response:
        out = [_alert(a) for g in groups for rule in g.alerting() for a in rule.active_alerts()]
        return web.json_response({"status": "success", "data": {"alerts": out}})

    # Prometheus's own paths, and the sidecar's first ones kept as aliases.
    return [
        web.get("/api/v1/rules", rules),
        web.get("/api/v1/alerts", alerts),
        web.get("/v1/rules", rules),
        web.get("/v1/alerts", alerts),
    ]
