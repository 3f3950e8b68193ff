"""POST /alerts: Alertmanager's webhook receiver, and the same entry point in process.

Alertmanager's webhook payload (version "4") is validated on the fields the sidecar
uses and tolerant of the ones it does not (``extra="ignore"``): Alertmanager adds
fields over time. Wrong content type is 415; invalid JSON, a schema problem or another
version is 422 with the validation message; nothing is acted on. A notification carries
its whole group, so each alert of ``alerts[]`` is routed and acted on with its own
``status``, never through ``commonLabels``.

The answer is 200 once the resulting actions are journaled, not after they ran: the
calls run in the background, and a slow app must not make Alertmanager time out and
resend. 503 only when the journal cannot be written, the one failure a retry can cure.
The embedded rule engine hands its alerts to ``Receiver.deliver`` directly, so both
paths share routing, dedupe, cooldowns, the journal and the metrics.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from sidecar.dispatch import Delivery, Dispatcher
from sidecar.errors import JournalError, clip, validation_message
from sidecar.model import Alert
from sidecar.routing import ACTION_LABEL, Router
from sidecar.server import json_error

__all__ = [
    "WEBHOOK_VERSION",
    "Receiver",
    "WebhookAlert",
    "WebhookPayload",
    "parse_payload",
    "refuse_non_json",
]

log = structlog.get_logger(__name__)

WEBHOOK_VERSION = "4"
_JSON = "application/json"
_UNSET = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
"""Go's zero time: Alertmanager's ``endsAt`` when it has none."""


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class WebhookAlert(_Tolerant):
    """One alert of the notification; only the fields the sidecar acts on are checked."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime | None = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL")
    fingerprint: str = Field("", pattern=r"^(?:[0-9a-f]{16})?$")

    def to_alert(self) -> Alert:
        """The sidecar's own ``Alert`` value."""
        ends = None if self.ends_at is None or self.ends_at <= _UNSET else self.ends_at
        return Alert(
            status=self.status,
            labels=self.labels,
            annotations=self.annotations,
            starts_at=self.starts_at,
            ends_at=ends,
            generator_url=self.generator_url,
            fingerprint=self.fingerprint,
        )


class WebhookPayload(_Tolerant):
    """Alertmanager's webhook notification, version 4."""

    version: str
    group_key: str = Field("", alias="groupKey")
    truncated_alerts: int = Field(0, ge=0, alias="truncatedAlerts")
    alerts: list[WebhookAlert]

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if value != WEBHOOK_VERSION:
            raise ValueError(f"unsupported payload version {value!r}, expected {WEBHOOK_VERSION!r}")
        return value


def refuse_non_json(request: web.Request) -> web.Response | None:
    """The 415 answer to a request whose content type is not JSON, or None."""
    if request.content_type == _JSON:
        return None
    return json_error(415, f"unsupported content type {request.content_type!r}, expected {_JSON!r}")


def parse_payload(body: bytes) -> WebhookPayload:
    """Validate a webhook body (``ValidationError`` on bad JSON or schema)."""
    return WebhookPayload.model_validate_json(body)


class Receiver:
    """Routes each alert to an action and hands them to the dispatcher."""

    def __init__(self, router: Router, dispatcher: Dispatcher, registry: CollectorRegistry) -> None:
        self._router = router
        self._dispatcher = dispatcher
        self._requests = Counter(
            "leak_sidecar_webhook_requests_total",
            "Webhook requests on /alerts handled by the receiver, by HTTP status code.",
            ["code"],
            registry=registry,
        )
        self._alerts = Counter(
            "leak_sidecar_webhook_alerts_total",
            "Alerts received (over HTTP or in process), by alert status and routed action.",
            ["status", "action"],
            registry=registry,
        )

    async def deliver(self, alerts: Sequence[Alert], source: str) -> Delivery:
        """Route and act on alerts; ``JournalError`` means nothing was acted on."""
        routed = []
        for given in alerts:
            # Identity fixed once, so that memory, journal and replay agree on it.
            alert = given if given.fingerprint else replace(given, fingerprint=given.identity())
            route = self._router.route(alert.labels)
            self._alerts.labels(alert.status, route.action).inc()
            if route.action == "invalid":
                log.warning(
                    "alert.invalid_action",
                    alertname=clip(alert.labels.get("alertname", ""), 100),
                    fingerprint=alert.identity(),
                    value=clip(alert.labels.get(ACTION_LABEL, ""), 100),
                    expected="circuit_break, cache_flush or none",
                    source=source,
                )
            elif route.action == "foreign":
                log.debug(
                    "alert.foreign",
                    alertname=clip(alert.labels.get("alertname", ""), 100),
                    fingerprint=alert.identity(),
                    matched=route.matched,
                    source=source,
                )
            routed.append((alert, route))
        return await self._dispatcher.apply(routed, source)

    def routes(self) -> list[web.RouteDef]:
        """The receiver's HTTP routes."""
        return [web.post("/alerts", self._handle)]

    def _answer(self, response: web.Response) -> web.Response:
        self._requests.labels(str(response.status)).inc()
        return response

    async def _handle(self, request: web.Request) -> web.Response:
        refused = refuse_non_json(request)
        if refused is not None:
            return self._answer(refused)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._requests.labels("413").inc()
            raise  # the server turns it into its JSON 413
        try:
            payload = parse_payload(body)
        except ValidationError as exc:
            message = validation_message(exc)
            log.warning("webhook.invalid", error=clip(message, 500))
            return self._answer(json_error(422, f"invalid webhook payload: {message}"))
        if payload.truncated_alerts:
            log.warning(
                "webhook.truncated", group_key=payload.group_key, count=payload.truncated_alerts
            )
        try:
            result = await self.deliver([a.to_alert() for a in payload.alerts], "alertmanager")
        except JournalError:
            return self._answer(
                json_error(503, "cannot journal the actions, nothing was done; retry later")
            )
        return self._answer(
            web.json_response(
                {
                    "status": "success",
                    "alerts": len(payload.alerts),
                    "duplicates": result.duplicates,
                    "cooled_down": result.cooled_down,
                    "actions": [{"id": a.id, "action": a.kind} for a in result.actions],
                }
            )
        )
