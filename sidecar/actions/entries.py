"""The journal's entries: what one line of the journal says, typed and versioned.

Each line is one JSON object tagged with its ``type`` and the ``version`` of its format
(``at`` is when it was written, in ms)::

    {"type":"decision","version":4,"at":...,"actions":[...],"circuit":{...},"seen":{...},
     "cooldowns":{...},"refused":{...}}
    {"type":"done","version":4,"at":...,"done":[{"id":"...","outcome":"success"}]}
    {"type":"snapshot","version":4,"at":...,"circuit":{...},"seen":{...},"cooldowns":{...},
     "actions":[...],"refused":{...}}

- ``decision``: what one delivery or request decided, journaled before it is answered:
  ``actions`` accepted (not yet finished), ``circuit`` the breaker's new state (absent
  when it did not change), ``seen`` the alert instances handled (``fingerprint@startsAt``
  to when, in ms), ``cooldowns`` (key to when an action last ran, in ms) and
  ``refused``, the changes to the breaks the fleet budget refused (alert instance to the
  refused break, or null when it left that memory: it broke, resolved, or was dropped
  by the bound).
- ``done``: the outcomes of finished actions.
- ``snapshot``: the whole live state, the first line a compaction writes.

The records inside are defined beside their values: ``AlertRecord`` and ``ActionRecord``
in ``action``, ``CircuitRecord`` in ``breaker``, ``RefusedRecord`` in ``plan``.

Versions. 1 is what 0.1.0 wrote: the same objects without ``type`` and ``version``; a
line with ``done`` is a completion, any other a decision (its compaction snapshot reads
as one). 2 adds those two fields and changes nothing else, so that a sidecar rolled back
to 0.1.0 still reads what this one wrote (it ignores the fields it does not know). 3
adds the circuit's ``generation`` and ``call`` (the id of the action carrying it) and
changes what is pending: a circuit call is no longer done when it gave up or was
refused, only when the app confirmed it or a later decision superseded it; a version 2
reader of these lines is not wanted (it would forget an unconfirmed break), hence the
bump. Version 2 lines read as version 3 with generation 0; a circuit call of version 1
or 2 that ended ``gave_up`` or ``rejected`` is pending again (see ``still_pending``),
so that a journal left by finding 1 re-sends the break it lost. 4 adds ``refused`` to
decisions and snapshots; lines of versions 2 and 3 read with none. A line of another
version is refused like a line of the wrong shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from sidecar.actions.action import Action, ActionRecord
from sidecar.actions.breaker import CircuitRecord
from sidecar.actions.plan import RefusedRecord
from sidecar.core.errors import clip

__all__ = [
    "JOURNAL_VERSION",
    "LEGACY_VERSION",
    "Decision",
    "Done",
    "Entry",
    "OutcomeRecord",
    "Replayed",
    "Snapshot",
    "decode",
    "encode",
    "replay",
    "still_pending",
]

JOURNAL_VERSION: Final = 4
"""The version this code writes."""
_V3: Final = 3
"""Same shapes as 4, without the refused breaks (read as none)."""
_V2: Final = 2
"""Same shapes as 3, without the circuit's generation (read with its default)."""
LEGACY_VERSION: Final = 1
"""0.1.0's entries, which carry no version."""


class OutcomeRecord(msgspec.Struct, frozen=True):
    """How one action ended: the actuator's ``Outcome``."""

    id: str
    outcome: str
    """Any text: an outcome a later version adds must not make its line unreadable."""


class Decision(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="decision"):
    """What one delivery, operator request or automatic reset decided."""

    version: int = JOURNAL_VERSION
    at: int
    actions: tuple[ActionRecord, ...] = ()
    circuit: CircuitRecord | msgspec.UnsetType = msgspec.UNSET
    """Left out when the circuit did not change (0.1.0 reads no null here)."""
    seen: dict[str, int] = {}
    cooldowns: dict[str, int] = {}
    refused: dict[str, RefusedRecord | None] = {}
    """Changes to the refused breaks, in the order made: null removes one."""


class Done(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="done"):
    """Actions whose call has finished: a restart does not call them again."""

    version: int = JOURNAL_VERSION
    at: int
    done: tuple[OutcomeRecord, ...]


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="snapshot"):
    """Everything a restart needs, written by compaction as the journal's first line."""

    version: int = JOURNAL_VERSION
    at: int
    circuit: CircuitRecord
    seen: dict[str, int]
    cooldowns: dict[str, int]
    actions: tuple[ActionRecord, ...]
    """Accepted, not yet finished."""
    refused: dict[str, RefusedRecord] = {}
    """The breaks the fleet budget refused, first refused first."""


Entry = Decision | Done | Snapshot


class _Legacy(msgspec.Struct, frozen=True):
    """An entry of version 1 (0.1.0): every part optional, as 0.1.0 read them."""

    at: int = 0
    actions: tuple[ActionRecord, ...] = ()
    done: tuple[OutcomeRecord, ...] = ()
    circuit: CircuitRecord | None = None
    seen: dict[str, int] = {}
    cooldowns: dict[str, int] = {}


_encoder = msgspec.json.Encoder()


def encode(entry: Entry) -> bytes:
    """One journal line, without its newline."""
    return _encoder.encode(entry)


def decode(obj: dict[str, Any]) -> list[Entry]:
    """The entries one decoded JSON object holds, as the current version.

    Raises ``msgspec.ValidationError`` on a wrong shape and ``ValueError`` on a version
    this code does not know.
    """
    version = obj.get("version", LEGACY_VERSION)
    # type() is int: true and 2.0 are no versions.
    if type(version) is int and version in (JOURNAL_VERSION, _V3, _V2):
        return [msgspec.convert(obj, Entry)]
    if type(version) is int and version == LEGACY_VERSION:
        return _upgrade(msgspec.convert(obj, _Legacy))
    raise ValueError(
        f"unsupported journal entry version {clip(repr(version), 40)}, "
        f"expected {LEGACY_VERSION}, {_V2}, {_V3} or {JOURNAL_VERSION}"
    )


def _upgrade(old: _Legacy) -> list[Entry]:
    """A version 1 entry as version 2 entries, in the order 0.1.0 applied its parts."""
    out: list[Entry] = []
    if old.actions or old.circuit is not None or old.seen or old.cooldowns or not old.done:
        circuit = msgspec.UNSET if old.circuit is None else old.circuit
        out.append(
            Decision(
                at=old.at,
                actions=old.actions,
                circuit=circuit,
                seen=old.seen,
                cooldowns=old.cooldowns,
            )
        )
    if old.done:
        out.append(Done(version=LEGACY_VERSION, at=old.at, done=old.done))
    return out


_FINAL_BEFORE_3: Final = frozenset({"gave_up", "rejected"})


def still_pending(done: Done, outcome: OutcomeRecord) -> bool:
    """Whether a circuit call this ``Done`` finished is still to be made.

    Before version 3 a circuit call that gave up or was refused was final; now the
    reconciler re-sends it until the app confirms it.
    """
    return done.version < _V3 and outcome.outcome in _FINAL_BEFORE_3


@dataclass(slots=True)
class Replayed:
    """What a journal's entries leave, read in order: the state a restart starts from."""

    circuit: CircuitRecord | None = None
    """The last circuit journaled; None without one."""
    pending: dict[str, Action] = field(default_factory=dict)
    """Calls decided and not finished (or to be made again), in the order decided."""
    seen: dict[str, int] = field(default_factory=dict)
    cooldowns: dict[str, int] = field(default_factory=dict)
    refused: dict[str, RefusedRecord] = field(default_factory=dict)
    """The breaks the fleet budget refused and nothing has removed since, oldest first."""


def replay(entries: Iterable[Entry]) -> Replayed:
    """Fold ``entries`` (whole and typed: the journal checked each) into a ``Replayed``."""
    out = Replayed()
    for entry in entries:
        if isinstance(entry, Done):
            for d in entry.done:
                call = out.pending.get(d.id)
                if call is not None and call.kind != "cache_flush" and still_pending(entry, d):
                    continue  # an older version gave up on it: send it again
                out.pending.pop(d.id, None)
            continue
        out.pending.update((a.id, Action.from_record(a)) for a in entry.actions)
        if isinstance(entry.circuit, CircuitRecord):
            out.circuit = entry.circuit
        out.seen.update(entry.seen)
        out.cooldowns.update(entry.cooldowns)
        if isinstance(entry, Snapshot):
            out.refused.update(entry.refused)
            continue
        for key, refused in entry.refused.items():
            if refused is None:
                out.refused.pop(key, None)
            else:
                out.refused[key] = refused
    return out
