"""The ``Action`` value: one call the sidecar decided to make, and its durable forms.

An action is decided by the receiver or the breaker, journaled, then handed to the
actuator; the same value is what the app receives as the JSON body of the call and
what a restarted sidecar reads back from the journal. Its ``id`` is the
``Idempotency-Key`` of every attempt, before and after a restart.

``AlertRecord`` and ``ActionRecord`` are how the journal stores alerts and actions
(see ``entries`` for the lines around them): msgspec Structs, checked field by field
when read back, with the field names 0.1.0 wrote, so that its journals still read.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from sidecar.core.errors import clip
from sidecar.core.model import ActionKind, Alert, AlertStatus
from sidecar.core.times import rfc3339, to_ms

__all__ = [
    "Action",
    "ActionRecord",
    "AlertRecord",
    "alert_from_record",
    "alert_json",
    "alert_names",
    "alert_record",
    "instance_key",
    "new_action_id",
]


def new_action_id() -> str:
    """A fresh action id: random, so that two sidecars never share an Idempotency-Key."""
    return uuid.uuid4().hex


def instance_key(alert: Alert) -> str:
    """One alert instance: its fingerprint and when it started (a re-fire is a new one)."""
    return f"{alert.fingerprint}@{to_ms(alert.starts_at)}"


def alert_names(alerts: Iterable[Alert]) -> str:
    """The alerts' names (their fingerprint when nameless), sorted, once each, bounded.

    Label values come from outside: cut before they reach a reason, the app, the journal
    or the log.
    """
    return clip(", ".join(sorted({a.labels.get("alertname", a.fingerprint) for a in alerts})), 200)


_UtcTime = Annotated[dt.datetime, msgspec.Meta(tz=True)]
"""An aware time; written in UTC with a ``Z``, as Alertmanager prints times."""
_EVIDENCE = "evidence_id"
"""The annotation the evidence stage sets; the app's call names the bundle with it."""


class AlertRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """An alert as the journal stores it and the API shows it: Alertmanager's names."""

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str]
    fingerprint: str
    starts_at: _UtcTime = msgspec.field(name="startsAt")
    generator_url: str = msgspec.field(name="generatorURL")
    ends_at: _UtcTime | None = msgspec.field(default=None, name="endsAt")
    """Left out when the alert has none."""


def alert_record(alert: Alert) -> AlertRecord:
    """The alert's durable record."""
    return AlertRecord(
        status=alert.status,
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        fingerprint=alert.fingerprint,
        starts_at=alert.starts_at.astimezone(dt.UTC),
        generator_url=alert.generator_url,
        ends_at=None if alert.ends_at is None else alert.ends_at.astimezone(dt.UTC),
    )


def alert_from_record(record: AlertRecord) -> Alert:
    """The alert a record stores, fingerprint included: it is never computed again."""
    return Alert(
        status=record.status,
        labels=record.labels,
        annotations=record.annotations,
        starts_at=record.starts_at,
        ends_at=record.ends_at,
        generator_url=record.generator_url,
        fingerprint=record.fingerprint,
    )


def alert_json(alert: Alert) -> dict[str, Any]:
    """The alert as the API shows it: its record's JSON form."""
    out: dict[str, Any] = msgspec.to_builtins(alert_record(alert))
    return out


class ActionRecord(msgspec.Struct, frozen=True):
    """An action as the journal stores it."""

    id: str
    kind: ActionKind
    reason: str
    source: str
    alerts: tuple[AlertRecord, ...]
    created: int
    """When it was decided, in milliseconds."""


@dataclass(frozen=True, slots=True)
class Action:
    """One decided call to the app."""

    id: str
    kind: ActionKind
    reason: str
    source: str
    """Who asked: ``alertmanager``, ``rules``, ``operator`` or ``breaker`` (auto-reset)."""
    alerts: tuple[Alert, ...]
    created_ms: int

    def body(self) -> dict[str, Any]:
        """The JSON body the app receives: what, why, who asked and which alerts."""
        return {
            "action": self.kind,
            "id": self.id,
            "reason": self.reason,
            "source": self.source,
            "alerts": [
                {
                    "labels": dict(a.labels),
                    "fingerprint": a.fingerprint,
                    "startsAt": rfc3339(a.starts_at),
                    # The evidence stage's bundle for this alert, when it took one.
                    **(
                        {"evidence": a.annotations[_EVIDENCE]} if _EVIDENCE in a.annotations else {}
                    ),
                }
                for a in self.alerts
            ],
        }

    def to_record(self) -> ActionRecord:
        """The journal record of this action."""
        return ActionRecord(
            id=self.id,
            kind=self.kind,
            reason=self.reason,
            source=self.source,
            alerts=tuple(alert_record(a) for a in self.alerts),
            created=self.created_ms,
        )

    @classmethod
    def from_record(cls, record: ActionRecord) -> Action:
        """Read back a journal record."""
        return cls(
            id=record.id,
            kind=record.kind,
            reason=record.reason,
            source=record.source,
            alerts=tuple(alert_from_record(a) for a in record.alerts),
            created_ms=record.created,
        )
