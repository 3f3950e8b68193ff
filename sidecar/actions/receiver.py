"""The receiver: alerts in, routed actions out, whoever sent them.

Alertmanager's webhook payload (version "4") is validated here on the fields the
sidecar uses and tolerant of the ones it does not (``extra="ignore"``): Alertmanager
adds fields over time. A notification carries its whole group, so each alert of
``alerts[]`` is routed and acted on with its own ``status``, never through
``commonLabels``. ``web.alerts_api`` serves it as ``POST /alerts``; the embedded rule
engine hands its alerts to ``Receiver.deliver`` directly, so both paths share routing,
dedupe, cooldowns, the journal and the metrics.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal

import structlog
from prometheus_client import CollectorRegistry, Counter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from sidecar.actions.dispatch import Delivery, Dispatcher
from sidecar.actions.routing import ACTION_LABEL, Router
from sidecar.core.errors import clip
from sidecar.core.model import Alert
from sidecar.core.model import fingerprint as labels_fingerprint

__all__ = [
    "WEBHOOK_VERSION",
    "Receiver",
    "WebhookAlert",
    "WebhookPayload",
    "parse_payload",
]

log = structlog.get_logger(__name__)

WEBHOOK_VERSION = "4"
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
        """The sidecar's own ``Alert`` value, with Alertmanager's fingerprint or ours."""
        ends = None if self.ends_at is None or self.ends_at <= _UNSET else self.ends_at
        return Alert(
            status=self.status,
            labels=self.labels,
            annotations=self.annotations,
            starts_at=self.starts_at,
            ends_at=ends,
            generator_url=self.generator_url,
            # Fixed here, once: memory, journal and replay agree on it from now on.
            fingerprint=self.fingerprint or labels_fingerprint(self.labels),
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


def parse_payload(body: bytes) -> WebhookPayload:
    """Validate a webhook body (``ValidationError`` on bad JSON or schema)."""
    return WebhookPayload.model_validate_json(body)


class Receiver:
    """Routes each alert to an action and hands them to the dispatcher."""

    def __init__(self, router: Router, dispatcher: Dispatcher, registry: CollectorRegistry) -> None:
        self._router = router
        self._dispatcher = dispatcher
        self._alerts = Counter(
            "leak_sidecar_webhook_alerts_total",
            "Alerts received (over HTTP or in process), by alert status and routed action.",
            ["status", "action"],
            registry=registry,
        )

    async def deliver(self, alerts: Sequence[Alert], source: str) -> Delivery:
        """Route and act on alerts; ``JournalError`` means nothing was acted on."""
        routed = []
        for alert in alerts:
            route = self._router.route(alert.labels)
            self._alerts.labels(alert.status, route.action).inc()
            if route.action == "invalid":
                log.warning(
                    "alert.invalid_action",
                    alertname=clip(alert.labels.get("alertname", ""), 100),
                    fingerprint=alert.fingerprint,
                    value=clip(alert.labels.get(ACTION_LABEL, ""), 100),
                    expected="circuit_break, cache_flush or none",
                    source=source,
                )
            elif route.action == "foreign":
                log.debug(
                    "alert.foreign",
                    alertname=clip(alert.labels.get("alertname", ""), 100),
                    fingerprint=alert.fingerprint,
                    matched=route.matched,
                    source=source,
                )
            routed.append((alert, route))
        return await self._dispatcher.apply(routed, source)
