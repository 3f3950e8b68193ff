"""The ``for`` state of alerts, kept across restarts of the sidecar.

Prometheus keeps each active alert's ``activeAt`` in the ``ALERTS_FOR_STATE`` series of
its TSDB and, after a restart, restores it (``RestoreForState`` in ``rules/manager.go``):
an alert that had been pending for 8 of its 10 minutes does not start again from zero,
and one that was already firing fires again at the next evaluation. The sidecar's
history lives in memory, so the same facts (alert name, labels, ``activeAt`` in Unix
seconds, when last seen active) are written to one small JSON file in the state
directory after each evaluation, atomically (temporary file, fsync, rename), and read
back at start. The restore arithmetic is Prometheus's, outage tolerance and grace
period included. A missing file is a first start; an unreadable one is logged and
ignored: losing ``for`` progress delays an alert, refusing to start would lose them all.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson
import structlog

from sidecar.core.model import LabelSet
from sidecar.rules.alerting import AlertingRule

__all__ = ["FILE_NAME", "ForEntry", "ForState", "restore_rule"]

log = structlog.get_logger(__name__)

FILE_NAME = "rules-for-state.json"
_VERSION = 1
_MAX_BYTES = 16 * 1024 * 1024


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
        self._dirty = False
        """The groups differ from the file: only then is it written (with an fsync)."""

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
        except (ValueError, TypeError, KeyError) as exc:
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
            self._dirty = True
        ok_names: set[str] = set()
        for rule in rules:
            ok_names.add(rule.name)
            for a in rule.active.values():
                if a.state:
                    key, entry = (rule.name, a.labels), ForEntry(a.active_at // 1000, t)
                    if entries.get(key) != entry:
                        entries[key] = entry
                        self._dirty = True
        ok_names -= set(failed)
        for key in [k for k, e in entries.items() if k[0] in ok_names and e.seen_ms < t]:
            del entries[key]
            self._dirty = True

    def keep_only(self, groups: Iterable[str]) -> None:
        """Forget groups that are no longer configured."""
        wanted = set(groups)
        for key in [g for g in self.groups if g not in wanted]:
            del self.groups[key]
            self._dirty = True

    def save(self) -> None:
        """Write the file atomically when it changed; errors are logged, never raised."""
        if self.path is None or not self._dirty:
            return
        try:
            data = _encode(self.groups)
        except TypeError as exc:
            log.warning("rules.for_state_write_failed", path=str(self.path), error=str(exc))
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("rules.for_state_write_failed", path=str(self.path), error=exc.strerror)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        self._dirty = False


def _encode(groups: Mapping[str, Mapping[Key, ForEntry]]) -> bytes:
    doc = {
        "version": _VERSION,
        "groups": {
            g: [
                {
                    "alert": name,
                    "labels": dict(labels),
                    "active_at": e.active_at_s,
                    "seen": e.seen_ms,
                }
                for (name, labels), e in sorted(entries.items())
            ]
            for g, entries in sorted(groups.items())
        },
    }
    return orjson.dumps(doc)


def _decode(raw: bytes) -> dict[str, dict[Key, ForEntry]]:
    if len(raw) > _MAX_BYTES:
        raise ValueError("file too large")
    doc = orjson.loads(raw)
    if not isinstance(doc, dict) or doc.get("version") != _VERSION:
        raise ValueError(f"expected version {_VERSION}")
    out: dict[str, dict[Key, ForEntry]] = {}
    for group, items in doc["groups"].items():
        entries: dict[Key, ForEntry] = {}
        for item in items:
            labels = item["labels"]
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
                raise TypeError("labels must map strings to strings")
            active, seen = item["active_at"], item["seen"]
            if not isinstance(active, int) or not isinstance(seen, int):
                raise TypeError("active_at and seen must be integers")
            entries[(str(item["alert"]), tuple(sorted(labels.items())))] = ForEntry(active, seen)
        out[str(group)] = entries
    return out


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
