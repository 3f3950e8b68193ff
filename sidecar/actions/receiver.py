"""The receiver: alerts in, routed actions out, whoever sent them.

Alertmanager's webhook payload (version "4") is validated here on the fields the
sidecar uses, strictly (``"1"`` is not a count), and tolerant of the ones it does not
(unknown fields are ignored): Alertmanager adds fields over time. A notification carries
its whole group, so each alert of ``alerts[]`` is routed and acted on with its own
``status``, never through ``commonLabels``. ``web.alerts_api`` serves it as ``POST
/alerts``; the embedded rule engine hands its alerts to ``Receiver.deliver`` directly, so
both paths share routing, dedupe, cooldowns, the journal and the metrics. Alerts about
another sidecar (routed ``foreign``) go on to their owner (``forward``, when
``fleet.forward.allow`` is set) once this pod's are journaled; otherwise they are logged
and dropped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal, Self

import msgspec
import structlog
from prometheus_client import CollectorRegistry, Counter

from sidecar.actions.dispatch import Delivery, Dispatcher
from sidecar.actions.forward import Forwarder
from sidecar.actions.routing import ACTION_LABEL
from sidecar.core.errors import clip
from sidecar.core.model import Alert
from sidecar.core.model import fingerprint as labels_fingerprint
from sidecar.core.validation import Checked, Problem, decode_json, json_problem

__all__ = [
    "MAX_ALERTS",
    "MAX_LABELS_CHARS",
    "WEBHOOK_VERSION",
    "Receiver",
    "RefusedAlert",
    "WebhookAlert",
    "WebhookPayload",
    "parse_payload",
]

log = structlog.get_logger(__name__)

WEBHOOK_VERSION = "4"
MAX_ALERTS = 1000
"""Alerts in one notification: a pod's own alerts are a handful; more is a flood.
Alertmanager's webhook_config ``max_alerts`` truncates at the source."""
MAX_LABELS_CHARS = 16384
"""Characters in one alert's label and annotation names and values together: a holder
of the circuit is kept, journaled and shown, so each must stay small."""
_UNSET = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
"""Go's zero time: Alertmanager's ``endsAt`` when it has none."""


_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})?"
)
"""The shape of an RFC 3339 time; the offset is checked after, and said to be missing."""


class _Time(Checked, dt.datetime):
    """An RFC 3339 time with its offset, normalised to UTC."""

    __slots__ = ()
    json_schema = {"type": "string", "format": "date-time"}  # noqa: RUF012 -- read only

    @classmethod
    def parse(cls, value: object) -> Self:
        # Strict: an RFC 3339 string only, never a number of seconds ("0" or 0). Then
        # normalised to UTC here, once: a time valid in its own offset but outside
        # Python's range in UTC (0001-01-01T00:00:00+00:01) is refused for this alert
        # instead of failing later, in the journal or at the next start.
        if not isinstance(value, str) or not _RFC3339.fullmatch(value):
            shown = clip(repr(value), 60) if isinstance(value, str) else type(value).__name__
            raise ValueError(f"expected an RFC 3339 time string, got {shown}")
        try:
            when = cls.fromisoformat(value.upper())
        except ValueError as exc:  # a month 13, a 24th hour: the shape was right
            raise ValueError(f"invalid time {clip(repr(value), 60)}: {exc}") from None
        if when.tzinfo is None:
            raise ValueError(f"expected a time with its offset (Z or +hh:mm), got {value!r}")
        try:
            return when.astimezone(dt.UTC)
        except OverflowError:
            raise ValueError(f"time out of range in UTC: {when.isoformat()}") from None

    def plain(self) -> dt.datetime:
        """The time as a ``datetime`` itself, as the journal's encoder takes it."""
        return dt.datetime.combine(self, self.timetz())


class WebhookAlert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert of the notification; only the fields the sidecar acts on are checked,
    the others are ignored."""

    status: Literal["firing", "resolved"]
    labels: Annotated[dict[str, str], msgspec.Meta(min_length=1)]
    annotations: dict[str, str] = msgspec.field(default_factory=dict)
    starts_at: _Time = msgspec.field(name="startsAt")
    ends_at: _Time | None = msgspec.field(default=None, name="endsAt")
    generator_url: Annotated[str, msgspec.Meta(max_length=4096)] = msgspec.field(
        default="", name="generatorURL"
    )
    fingerprint: Annotated[str, msgspec.Meta(pattern=r"^(?:[0-9a-f]{16})?$")] = ""

    def __post_init__(self) -> None:
        size = sum(len(k) + len(v) for d in (self.labels, self.annotations) for k, v in d.items())
        if size > MAX_LABELS_CHARS:
            raise ValueError(
                f"labels and annotations: expected at most {MAX_LABELS_CHARS} characters "
                f"together, got {size}"
            )

    def to_alert(self) -> Alert:
        """The sidecar's own ``Alert`` value, with Alertmanager's fingerprint or ours."""
        ends = None if self.ends_at is None or self.ends_at <= _UNSET else self.ends_at.plain()
        return Alert(
            status=self.status,
            labels=self.labels,
            annotations=self.annotations,
            starts_at=self.starts_at.plain(),
            ends_at=ends,
            generator_url=self.generator_url,
            # Fixed here, once: memory, journal and replay agree on it from now on.
            fingerprint=self.fingerprint or labels_fingerprint(self.labels),
        )


class _Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """The notification around its alerts; each alert is validated on its own."""

    version: str
    group_key: str = msgspec.field(default="", name="groupKey")
    # Strict: "1", 1.0 or true is not a count.
    truncated_alerts: Annotated[int, msgspec.Meta(ge=0)] = msgspec.field(
        default=0, name="truncatedAlerts"
    )
    # Counted before any alert is looked at: a flood of empty alerts costs one check.
    # Each stays undecoded JSON until it is validated as a WebhookAlert.
    alerts: Annotated[list[msgspec.Raw], msgspec.Meta(max_length=MAX_ALERTS)]

    def __post_init__(self) -> None:
        if self.version != WEBHOOK_VERSION:
            shown = clip(repr(self.version), 60)
            raise ValueError(
                f"version: unsupported payload version {shown}, expected {WEBHOOK_VERSION!r}"
            )


@dataclass(frozen=True, slots=True)
class RefusedAlert:
    """An alert of the notification that failed validation: not acted on."""

    index: int
    error: str


@dataclass(frozen=True, slots=True)
class WebhookPayload:
    """Alertmanager's webhook notification, version 4: its valid alerts, and the refused."""

    version: str
    group_key: str
    truncated_alerts: int
    alerts: tuple[WebhookAlert, ...]
    refused: tuple[RefusedAlert, ...]


def parse_payload(body: bytes) -> WebhookPayload:
    """Validate a webhook body: ``msgspec.DecodeError`` when it is not JSON, and its
    subclass ``msgspec.ValidationError`` when the envelope is wrong.

    Each alert is validated on its own: one bad alert (an impossible date, say) is
    refused alone, and the others of its group are still acted on.
    """
    envelope = decode_json(body, _Envelope)
    alerts, refused = [], []
    for index, raw in enumerate(envelope.alerts):
        try:
            alerts.append(decode_json(raw, WebhookAlert))
        except msgspec.DecodeError as exc:
            # Never the input: what a hostile alert holds is not repeated back.
            problem = json_problem(exc)
            where = Problem(("alerts", str(index), *problem.loc), problem.message)
            refused.append(RefusedAlert(index, clip(where.line())))
    return WebhookPayload(
        envelope.version,
        envelope.group_key,
        envelope.truncated_alerts,
        tuple(alerts),
        tuple(refused),
    )


class Receiver:
    """Routes each alert to an action (by the dispatcher's router, which a reload replaces)
    and hands them to the dispatcher."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        registry: CollectorRegistry,
        *,
        tag: Callable[[Sequence[Alert]], list[Alert]] | None = None,
        forwarder: Forwarder | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._forwarder = forwarder if forwarder is not None and forwarder.enabled else None
        self._alerts = Counter(
            "leak_sidecar_webhook_alerts_total",
            "Alerts received (over HTTP or in process), by alert status and routed action.",
            ["status", "action"],
            registry=registry,
        )
        # The evidence stage sees (and annotates) this pod's alerts from Alertmanager; the
        # embedded engine's are tagged before they are sent.
        self.tag = tag

    async def deliver(
        self, alerts: Sequence[Alert], source: str, *, hop: str | None = None
    ) -> Delivery:
        """Route and act on alerts, then forward the other sidecars' to their owner.

        ``JournalError`` means nothing was acted on; ``ForwardFailed`` that this pod's
        alerts were, and an owner did not accept its own: the delivery must be retried.
        ``hop`` is the forwarding sidecar's ``HOP_HEADER`` on a forwarded delivery.
        """
        routed = []
        for alert in alerts:
            route = self._dispatcher.router.route(alert.labels)
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
            elif route.action == "foreign" and self._forwarder is None:
                log.debug(
                    "alert.foreign",
                    alertname=clip(alert.labels.get("alertname", ""), 100),
                    fingerprint=alert.fingerprint,
                    matched=route.matched,
                    source=source,
                )
            routed.append((alert, route))
        if self.tag is not None and source == "alertmanager":
            ours = [i for i, (_, route) in enumerate(routed) if route.action != "foreign"]
            tagged = self.tag([routed[i][0] for i in ours])
            for i, alert in zip(ours, tagged, strict=True):
                routed[i] = (alert, routed[i][1])
        done = await self._dispatcher.apply(routed, source)
        foreign = [alert for alert, route in routed if route.action == "foreign"]
        if self._forwarder is None or not foreign:
            return done
        forwarded = await self._forwarder.forward(foreign, hop=hop)
        return dataclasses.replace(done, forwarded=forwarded)
