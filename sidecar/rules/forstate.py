"""The ``for`` state of alerts, kept across restarts of the sidecar.

Prometheus keeps each active alert's ``activeAt`` in the ``ALERTS_FOR_STATE`` series of
its TSDB and, after a restart, restores it (``RestoreForState`` in ``rules/manager.go``):
an alert that had been pending for 8 of its 10 minutes does not start again from zero,
and one that was already firing fires again at the next evaluation. The sidecar's
history lives in memory, so the same facts (alert name, labels, ``activeAt`` in Unix
seconds, when last seen active) are written to one small JSON file in the state
directory after an evaluation that changed them, atomically and off the event loop
(``core.durable``), and read back at start. The restore arithmetic is Prometheus's,
outage tolerance and grace period included. A missing file is a first start; an
unreadable one is logged and ignored: losing ``for`` progress delays an alert, refusing
to start would lose them all.

The file is one msgspec-typed document, ``version`` 1 (as 0.1.0 wrote it; its shape has
not changed, so a rolled-back sidecar still reads it)::

    {"version":1,"groups":{"<file>;<group>":[
        {"alert":"<name>","labels":{...},"active_at":<s>,"seen":<ms>}, ...]}}

Another version is refused as a file of the wrong shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec
import structlog

from sidecar.core.durable import in_thread, write_atomic
from sidecar.core.model import LabelSet
from sidecar.rules.alerting import AlertingRule

__all__ = ["FILE_NAME", "FOR_STATE_VERSION", "ForEntry", "ForState", "restore_rule"]

log = structlog.get_logger(__name__)

FILE_NAME = "rules-for-state.json"
FOR_STATE_VERSION: Final = 1
"""The version this code writes and reads."""
_MAX_BYTES = 16 * 1024 * 1024


class _Item(msgspec.Struct, frozen=True):
    """One active alert in the file."""

    alert: str
    labels: dict[str, str]
    active_at: int
    """``activeAt`` in Unix seconds, as ``ALERTS_FOR_STATE``'s value."""
    seen: int
    """When it was last seen active, in ms."""


class _File(msgspec.Struct, frozen=True):
    """The whole file: every group's active alerts, by group key (``file;name``)."""

    version: int
    groups: dict[str, list[_Item]]


class _Head(msgspec.Struct, frozen=True):
    """Just the version, read first so that another version is named as such."""

    version: int


_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class ForEntry:
    """One active alert as last seen: ``activeAt`` (Unix seconds) and when seen (ms)."""

    active_at_s: int
    seen_ms: int


Key = tuple[str, LabelSet]
"""(alert name, alert labels)."""


class ForState:
    """Every group's active alerts, as ``ALERTS_FOR_STATE`` would hold them."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.groups: dict[str, dict[Key, ForEntry]] = {}
        self._changes = 0
        """Counts changes to ``groups``; the file is written only when it lags behind."""
        self._saved = 0
        """The count of changes the file holds."""
        self._lock = asyncio.Lock()
        """One write at a time, in order: groups evaluate concurrently."""

    def load(self) -> None:
        """Read the file; a missing or broken file leaves the state empty."""
        if self.path is None:
            return
        try:
            with open(self.path, "rb") as f:
                raw = f.read(_MAX_BYTES + 1)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("rules.for_state_unreadable", path=str(self.path), error=exc.strerror)
            return
        try:
            self.groups = _decode(raw)
        except (msgspec.DecodeError, ValueError) as exc:
            log.warning("rules.for_state_invalid", path=str(self.path), error=str(exc)[:200])
            return
        log.info("rules.for_state_loaded", path=str(self.path), groups=len(self.groups))

    def update(
        self, group: str, t: int, rules: Iterable[AlertingRule], failed: Iterable[str]
    ) -> None:
        """Record the group's evaluation at ``t``: ok rules' active alerts replace old ones.

        Entries of an alert name whose rule failed are kept as they were, as Prometheus
        keeps the last ``ALERTS_FOR_STATE`` sample when an evaluation writes nothing.
        """
        entries = self.groups.get(group)
        if entries is None:
            entries = self.groups[group] = {}
            self._changes += 1
        ok_names: set[str] = set()
        for rule in rules:
            ok_names.add(rule.name)
            for a in rule.active.values():
                if a.state:
                    key, entry = (rule.name, a.labels), ForEntry(a.active_at // 1000, t)
                    if entries.get(key) != entry:
                        entries[key] = entry
                        self._changes += 1
        ok_names -= set(failed)
        for key in [k for k, e in entries.items() if k[0] in ok_names and e.seen_ms < t]:
            del entries[key]
            self._changes += 1

    def keep_only(self, groups: Iterable[str]) -> None:
        """Forget groups that are no longer configured."""
        wanted = set(groups)
        for key in [g for g in self.groups if g not in wanted]:
            del self.groups[key]
            self._changes += 1

    async def save(self) -> None:
        """Write the file when it changed, off the event loop; errors are logged, not raised.

        A failed or cancelled write leaves the file behind: the next save tries again.
        """
        if self.path is None:
            return
        async with self._lock:
            changes = self._changes
            if changes == self._saved:
                return
            # Encoded here, on the loop: the thread must not read groups being updated.
            data = _encode(self.groups)
            try:
                await in_thread(write_atomic, self.path, data)
            except OSError as exc:
                log.warning("rules.for_state_write_failed", path=str(self.path), error=exc.strerror)
                return
            self._saved = changes


def _encode(groups: Mapping[str, Mapping[Key, ForEntry]]) -> bytes:
    doc = _File(
        version=FOR_STATE_VERSION,
        groups={
            g: [
                _Item(alert=name, labels=dict(labels), active_at=e.active_at_s, seen=e.seen_ms)
                for (name, labels), e in sorted(entries.items())
            ]
            for g, entries in sorted(groups.items())
        },
    )
    return _encoder.encode(doc)


def _decode(raw: bytes) -> dict[str, dict[Key, ForEntry]]:
    if len(raw) > _MAX_BYTES:
        raise ValueError("file too large")
    version = msgspec.json.decode(raw, type=_Head).version
    if version != FOR_STATE_VERSION:
        raise ValueError(f"unsupported version {version}, expected {FOR_STATE_VERSION}")
    doc = msgspec.json.decode(raw, type=_File)
    return {
        group: {
            (item.alert, tuple(sorted(item.labels.items()))): ForEntry(item.active_at, item.seen)
            for item in items
        }
        for group, items in doc.groups.items()
    }


def restore_rule(
    rule: AlertingRule,
    entries: Mapping[Key, ForEntry],
    now_ms: int,
    outage_tolerance_ms: int,
    grace_ms: int,
) -> None:
    """Prometheus's ``RestoreForState`` for one rule; each restored alert is logged.

    Only alerts active now are restored, from an entry seen within the outage tolerance.
    One that had been firing keeps its ``activeAt`` (it fires at the next evaluation);
    one that needs less than the grace period to fire gets exactly the grace period; any
    other is moved forward by the time the sidecar was down.
    """
    hold = rule.spec.for_ms
    rule.restored = True
    if hold < grace_ms:
        # Waiting out a grace period longer than ``for`` itself would only delay it.
        return
    for a in rule.active.values():
        entry = entries.get((rule.name, a.labels))
        if entry is None or not now_ms - outage_tolerance_ms <= entry.seen_ms <= now_ms:
            continue
        down_at = int(entry.seen_ms / 1000) * 1000
        active_at = entry.active_at_s * 1000
        remaining = hold - (down_at - active_at)
        if 0 < remaining < grace_ms:
            active_at = now_ms + grace_ms - hold
        elif remaining >= grace_ms:
            active_at += now_ms - down_at
        a.active_at = active_at
        log.info(
            "rules.for_state_restored",
            alertname=rule.name,
            labels=dict(a.labels),
            active_at_ms=active_at,
        )
