"""The ``Action`` value: one call the sidecar decided to make, and its JSON forms.

An action is decided by the receiver or the breaker, journaled, then handed to the
actuator; the same value is what the app receives as the JSON body of the call and
what a restarted sidecar reads back from the journal. Its ``id`` is the
``Idempotency-Key`` of every attempt, before and after a restart.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast, get_args

from sidecar.core.errors import clip
from sidecar.core.model import ActionKind, Alert, AlertStatus
from sidecar.core.times import parse_iso, rfc3339, to_ms

__all__ = [
    "ACTION_KINDS",
    "Action",
    "alert_from_json",
    "alert_json",
    "alert_names",
    "instance_key",
    "new_action_id",
]

ACTION_KINDS: tuple[ActionKind, ...] = get_args(ActionKind)


def new_action_id() -> str:
    """A fresh action id: random, so that two sidecars never share an Idempotency-Key."""
    return uuid.uuid4().hex


def instance_key(alert: Alert) -> str:
    """One alert instance: its fingerprint and when it started (a re-fire is a new one)."""
    return f"{alert.identity()}@{to_ms(alert.starts_at)}"


def alert_names(alerts: Iterable[Alert]) -> str:
    """The alerts' names (their fingerprint when nameless), sorted, once each, bounded.

    Label values come from outside: cut before they reach a reason, the app, the journal
    or the log.
    """
    return clip(", ".join(sorted({a.labels.get("alertname", a.identity()) for a in alerts})), 200)


def alert_json(alert: Alert) -> dict[str, Any]:
    """The alert as the journal, the app's request body and the API show it."""
    out: dict[str, Any] = {
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "fingerprint": alert.identity(),
        "startsAt": rfc3339(alert.starts_at),
        "generatorURL": alert.generator_url,
    }
    if alert.ends_at is not None:
        out["endsAt"] = rfc3339(alert.ends_at)
    return out


def alert_from_json(data: Mapping[str, Any]) -> Alert:
    """Read back what ``alert_json`` wrote (from our own journal: trusted shape)."""
    ends = data.get("endsAt")
    return Alert(
        status=cast(AlertStatus, data["status"]),
        labels=dict(data["labels"]),
        annotations=dict(data.get("annotations", {})),
        starts_at=parse_iso(data["startsAt"]),
        ends_at=parse_iso(ends) if ends else None,
        generator_url=str(data.get("generatorURL", "")),
        fingerprint=str(data["fingerprint"]),
    )


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
                    "fingerprint": a.identity(),
                    "startsAt": rfc3339(a.starts_at),
                }
                for a in self.alerts
            ],
        }

    def to_json(self) -> dict[str, Any]:
        """The journal record of this action."""
        return {
            "id": self.id,
            "kind": self.kind,
            "reason": self.reason,
            "source": self.source,
            "alerts": [alert_json(a) for a in self.alerts],
            "created": self.created_ms,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Action:
        """Read back a journal record (``KeyError``/``ValueError`` on a damaged one)."""
        kind = data["kind"]
        if kind not in ACTION_KINDS:
            raise ValueError(f"unknown action kind {kind!r}")
        return cls(
            id=str(data["id"]),
            kind=cast(ActionKind, kind),
            reason=str(data["reason"]),
            source=str(data["source"]),
            alerts=tuple(alert_from_json(a) for a in data["alerts"]),
            created_ms=int(data["created"]),
        )
