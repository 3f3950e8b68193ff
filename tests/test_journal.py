"""The journal: fsynced appends, tolerant replay, atomic compaction, and restart from it."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from actions_support import alert, journal_entries, rig, webhook
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from sidecar.actions.breaker import CircuitState
from sidecar.actions.entries import Decision, Done, OutcomeRecord, Snapshot, still_pending
from sidecar.actions.journal import JOURNAL_FILE, Journal
from sidecar.core.errors import JournalError
from sidecar.core.model import fingerprint
from sidecar.demo.app import DemoApp

FIXTURE = Path(__file__).parent / "fixtures" / "journal-0.1.0"
T0_MS = 1_700_000_000_000
"""actions_support's fake clock start, in ms."""
_CLOSED = CircuitState().to_record()


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _seen(key: str, at: int) -> Decision:
    return Decision(at=at, seen={key: at})


async def test_append_writes_one_fsynced_line_per_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each entry is one tagged, versioned JSON line, fsynced before append returns."""
    synced: list[int] = []
    real_fdatasync = os.fdatasync

    def fdatasync(fd: int) -> None:
        synced.append(fd)
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    journal = Journal(tmp_path / "state", CollectorRegistry())
    decision = _seen("f@0:firing", 1)
    await journal.append(decision)
    assert len(synced) == 1
    done = Done(at=2, done=(OutcomeRecord("a-1", "success"),))
    await journal.append(done)
    assert len(synced) == 2
    await journal.close()
    assert (tmp_path / "state" / JOURNAL_FILE).read_bytes() == (
        b'{"type":"decision","version":4,"at":1,"actions":[],"seen":{"f@0:firing":1},'
        b'"cooldowns":{},"refused":{}}\n'
        b'{"type":"done","version":4,"at":2,"done":[{"id":"a-1","outcome":"success"}]}\n'
    )
    assert list(journal.replay()) == [decision, done]
    assert journal.entries == 2
    assert oct((tmp_path / "state" / JOURNAL_FILE).stat().st_mode & 0o777) == "0o600"


def test_corrupt_and_truncated_lines_are_skipped_with_a_warning(tmp_path: Path) -> None:
    """Damaged lines are counted and logged; the readable entries around them survive."""
    path = tmp_path / JOURNAL_FILE
    path.write_bytes(b'{"at":1}\n\x00\x01garbage\n[1,2]\n\n{"at":2}\n{"c":')
    registry = CollectorRegistry()
    journal = Journal(tmp_path, registry)
    with capture_logs() as events:
        assert list(journal.replay()) == [Decision(at=1), Decision(at=2)]
    corrupt = [e for e in events if e["event"] == "journal.corrupt_line"]
    assert [e["line"] for e in corrupt] == [2, 3, 6]
    assert corrupt[1]["error"] == "not a JSON object"
    assert registry.get_sample_value("leak_sidecar_journal_corrupt_lines_total") == 3.0


def test_entries_of_the_wrong_shape_or_version_are_skipped_with_a_warning(tmp_path: Path) -> None:
    """JSON objects that are no entry this code knows are logged, counted, and skipped."""
    lines = [
        b'{"type":"decision","version":2,"at":"soon"}',
        b'{"type":"restart","version":2,"at":1}',
        b'{"version":5,"at":1}',
        b'{"version":"2","at":1}',
        b'{"actions":[{"id":"x"}]}',
        b'{"type":"done","version":2,"at":9,"done":[]}',
    ]
    (tmp_path / JOURNAL_FILE).write_bytes(b"\n".join(lines))
    registry = CollectorRegistry()
    with capture_logs() as events:
        assert list(Journal(tmp_path, registry).replay()) == [Done(version=2, at=9, done=())]
    assert [(e["event"], e["line"]) for e in events] == [
        ("journal.corrupt_entry", n) for n in (1, 2, 3, 4, 5)
    ]
    # Lines 1, 2 and 5 carry the decoder's own words (msgspec's, which change between
    # releases); the version check is ours and pinned.
    assert all(e["error"] for e in events)
    assert [e["error"] for e in events[2:4]] == [
        "unsupported journal entry version 5, expected 1, 2, 3 or 4",
        "unsupported journal entry version '2', expected 1, 2, 3 or 4",
    ]
    assert registry.get_sample_value("leak_sidecar_journal_corrupt_lines_total") == 5.0


def test_version_1_entries_read_as_the_current_version(tmp_path: Path) -> None:
    """0.1.0's untagged lines become decisions and completions, in the order it applied them."""
    (tmp_path / JOURNAL_FILE).write_bytes(
        b'{"at":5,"seen":{"k":5},"done":[{"id":"a-1","outcome":"success"}]}\n'
        b'{"at":6,"done":[{"id":"a-2","outcome":"rejected"}]}\n'
    )
    assert list(Journal(tmp_path, CollectorRegistry()).replay()) == [
        Decision(at=5, seen={"k": 5}),
        Done(version=1, at=5, done=(OutcomeRecord("a-1", "success"),)),
        Done(version=1, at=6, done=(OutcomeRecord("a-2", "rejected"),)),
    ]


def test_missing_journal_replays_nothing(tmp_path: Path) -> None:
    """A first start has no journal: nothing to replay, no error."""
    assert list(Journal(tmp_path / "new", CollectorRegistry()).replay()) == []


async def test_cancelled_append_still_finishes_its_write_before_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write in its thread cannot be cut: cancelling the caller waits for it under the lock."""
    real_fdatasync, real_close = os.fdatasync, os.close
    entered = threading.Event()
    order: list[str] = []

    def slow_fsync(fd: int) -> None:
        entered.set()
        time.sleep(0.2)
        real_fdatasync(fd)
        order.append("fsync")

    def close(fd: int) -> None:
        order.append("close")
        real_close(fd)

    monkeypatch.setattr(os, "fdatasync", slow_fsync)
    monkeypatch.setattr(os, "close", close)
    journal = Journal(tmp_path, CollectorRegistry())
    task = asyncio.create_task(journal.append(Decision(at=1)))
    await asyncio.to_thread(entered.wait, 5)
    task.cancel()
    await journal.close()  # waits for the write, then closes
    assert task.cancelled()
    assert order == ["fsync", "close"]
    assert list(journal.replay()) == [Decision(at=1)]


async def test_rewrite_replaces_atomically_and_leaves_no_temp_file(tmp_path: Path) -> None:
    """Compaction swaps in the live entries; appends continue on the new file."""
    journal = Journal(tmp_path, CollectorRegistry())
    for i in range(5):
        await journal.append(_seen(f"k{i}", i))
    live = Snapshot(at=9, circuit=_CLOSED, seen={"k4": 4}, cooldowns={}, actions=())
    await journal.rewrite(lambda: [live])
    await journal.append(_seen("after", 10))
    await journal.close()
    assert list(journal.replay()) == [live, _seen("after", 10)]
    assert _names(tmp_path) == [JOURNAL_FILE]
    assert journal.entries == 2


async def test_failed_write_raises_and_the_next_entry_starts_a_fresh_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write cut off mid-line is an error; the torn line is later skipped, not merged."""
    registry = CollectorRegistry()
    journal = Journal(tmp_path, registry)
    await journal.append(_seen("a", 1))
    real_write = os.write

    def torn(fd: int, data: Any) -> int:
        real_write(fd, bytes(data)[:5])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", torn)
    message = f"cannot write journal {journal.path}: [Errno 28] No space left on device"
    with pytest.raises(JournalError, match=f"^{re.escape(message)}$"):
        await journal.append(_seen("b", 2))
    monkeypatch.setattr(os, "write", real_write)
    await journal.append(_seen("c", 3))
    await journal.close()
    assert list(journal.replay()) == [_seen("a", 1), _seen("c", 3)]
    assert registry.get_sample_value("leak_sidecar_journal_write_failures_total") == 1.0


async def test_restart_restores_circuit_dedupe_and_cooldowns(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """A new sidecar on the same journal knows the circuit and ignores an Alertmanager repeat."""
    payload = webhook(
        alert("PoolSaturated", action="circuit_break"), alert("MapGrowing", action="cache_flush")
    )
    async with rig(tmp_path, registry) as r:
        await r.post("/alerts", payload)
        await r.settle()
        before = r.path.breaker.state
    async with rig(tmp_path, CollectorRegistry()) as r:
        assert r.path.breaker.state == before
        _, body = await r.post("/alerts", payload)
        assert (body["actions"], body["duplicates"]) == ([], 2)
        _, body = await r.post("/alerts", webhook(alert("Other", action="cache_flush")))
        assert body["cooled_down"] == 1
        await r.settle()
        assert r.calls() == []
        assert r.metric("leak_sidecar_circuit_state", state="open") == 1.0


async def test_restart_resumes_unfinished_calls_with_the_same_key(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """An action journaled but cut off mid-call is called again at start, same Idempotency-Key."""
    demo = DemoApp()
    async with rig(tmp_path, registry, demo=demo) as r:
        pool = webhook(alert("PoolSaturated", action="circuit_break"))
        await r.in_flight("/v1/circuit/break", "/alerts", pool)
        await r.path.dispatcher.drain(0.0)  # shutdown cuts it off: it stays journaled
        assert list(r.path.dispatcher.pending) == ["a-1"]
    async with rig(tmp_path, CollectorRegistry(), demo=demo) as r:
        await r.settle()
        assert [(c.path, c.idempotency_key, c.status) for c in r.calls()] == [
            ("/v1/circuit/break", "a-1", 200)
        ]
        assert r.path.dispatcher.pending == {}
        assert r.path.breaker.state.state == "open"
    # Its completion is journaled: a third start calls nothing (the app saw that one call).
    async with rig(tmp_path, CollectorRegistry(), demo=demo) as r:
        await r.settle()
        assert [(c.path, c.idempotency_key) for c in r.calls()] == [("/v1/circuit/break", "a-1")]


async def test_journal_is_compacted_past_its_bound(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Past actions.journal_max_entries lines the journal is rewritten to its live state."""
    async with rig(tmp_path, registry, actions={"journal_max_entries": 5}) as r:
        for i in range(6):
            await r.post("/alerts", webhook(alert(f"A{i}", action="cache_flush")))
            await r.settle()
            r.clock.advance(301)
        assert len(r.calls()) == 6
        path = r.path.journal.path
        # start 1; +2 per delivery (decision, done); compacted to 1 at the 3rd and 6th.
        assert r.path.journal.entries == 2
    assert len(journal_entries(path)) == 2
    async with rig(tmp_path, CollectorRegistry()) as r:
        _, body = await r.post("/alerts", webhook(alert("A5", action="cache_flush")))
        assert body["duplicates"] == 1
        _, body = await r.post("/alerts", webhook(alert("B", action="cache_flush")))
        assert body["cooled_down"] == 1  # the last flush was 0s ago on the restored clock


async def test_journal_is_compacted_past_its_byte_bound(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Large entries trigger compaction by size long before the line bound."""
    big = "x" * 2000
    sizes = []
    async with rig(tmp_path, registry, actions={"journal_max_bytes": 9000}) as r:
        with capture_logs() as events:
            for i in range(6):
                a = alert(f"A{i}", action="cache_flush")
                a["annotations"]["description"] = big
                await r.post("/alerts", webhook(a))
                await r.settle()
                r.clock.advance(301)
                sizes.append(r.path.journal.size)
        assert r.path.journal.size == r.path.journal.path.stat().st_size
    # One entry is about 2.6 kB: the file never exceeds the bound by more than one.
    assert max(sizes) < 9000 + 2700
    assert [e["event"] for e in events].count("journal.compacted") == 1
    assert len(r.calls()) == 6


async def test_damaged_entries_do_not_stop_a_restart(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """A malformed entry and a truncated last line are skipped; the rest is restored."""
    async with rig(tmp_path, registry) as r:
        await r.post("/alerts", webhook(alert("PoolSaturated", action="circuit_break")))
        await r.settle()
        path = r.path.journal.path
    with path.open("ab") as f:
        f.write(b'{"at":1,"circuit":{"state":"bogus"}}\n{"at":2,"actions":[{"id":"x"')
    with capture_logs() as events:
        async with rig(tmp_path, CollectorRegistry()) as r:
            assert r.path.breaker.state.state == "open"
            assert r.path.dispatcher.pending == {}
    assert [e["event"] for e in events if e["event"].startswith("journal.corrupt")] == [
        "journal.corrupt_entry",
        "journal.corrupt_line",
    ]


POOL = {"alertname": "PoolSaturated", "action": "circuit_break", "pod": "orders-1"}
POOL_ALERT = {
    "labels": POOL,
    "fingerprint": "e4633889fbb03b94",
    "generatorURL": "http://prometheus:9090/graph",
    "startsAt": "2023-11-14T22:00:00Z",
}
"""PoolSaturated as the fixtures' Alertmanager sent it and 0.1.0 journaled it."""


def _pool(status: str = "firing", starts: str = "2023-11-14T22:00:00Z") -> dict[str, Any]:
    """PoolSaturated in a webhook, fingerprint included, as Alertmanager sends it."""
    return alert("PoolSaturated", status, starts, fingerprint(POOL), **POOL)


def _record(state: CircuitState) -> Any:
    """The circuit as the journal stores it, in JSON values: what 0.1.0's to_json gave."""
    return msgspec.json.decode(msgspec.json.encode(state.to_record()))


async def test_a_0_1_0_journal_of_a_held_circuit_restores_what_0_1_0_restored(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """0.1.0's journal of a held circuit gives the circuit and dedupe 0.1.0 restored from it.

    tests/fixtures/journal-0.1.0/held/journal.jsonl was written by 0.1.0 itself: its
    generate.py, run in a worktree of commit 45f1ba4, drove 0.1.0's action path (its
    tests/actions_support.py rig: demo app, fake clock, ids a-1...) through an alert that
    broke the circuit, a repeat of it, a flush alert, an operator's break held open and the
    alert's resolution, then restarted 0.1.0 on the result and printed the state, the
    pending calls and the answer to the first alert again: the values asserted here.
    """
    shutil.copytree(FIXTURE / "held", tmp_path / "state")
    async with rig(tmp_path, registry) as r:
        state = r.path.breaker.state
        assert _record(state) == {
            "state": "held",
            "since": T0_MS,
            "reason": "hold until the pool leak is fixed",
            "source": "operator",
            "holders": [
                {
                    **POOL_ALERT,
                    "status": "resolved",
                    "annotations": {"summary": "PoolSaturated is resolved"},
                    "endsAt": "2023-11-14T23:00:00Z",
                }
            ],
            "open_until": None,
            "level": 0,
            "last_reset": None,
            # 0.1.0 named no generation: its open circuit gets the next one, and its call a
            # key for every re-send after an app restart (the rig's ids start at a-1).
            "generation": 1,
            "call": "a-1",
        }
        assert [h.key for h in state.holders] == ["e4633889fbb03b94"]
        assert r.path.dispatcher.pending == {}
        _, body = await r.post("/alerts", webhook(_pool()))
        assert (body["actions"], body["duplicates"]) == ([], 1)
        await r.settle()
        assert r.calls() == []


async def test_a_0_1_0_journal_reopened_with_a_call_pending_restores_what_0_1_0_restored(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """0.1.0's journal of a re-opened circuit gives its state, dedupe and unfinished call.

    tests/fixtures/journal-0.1.0/reopened/journal.jsonl was written by 0.1.0 itself, as
    the held one (see that test): 0.1.0 restarted on the held journal (compacting it),
    then an operator reset, the alert fired again within probation (open for longer) and
    an operator's flush was cut off mid-call by shutdown. The values asserted here are what
    0.1.0 restored from it, the flush it made again at start included.
    """
    shutil.copytree(FIXTURE / "reopened", tmp_path / "state")
    async with rig(tmp_path, registry) as r:
        state = r.path.breaker.state
        assert _record(state) == {
            "state": "open",
            "since": T0_MS + 120_000,
            "reason": "alert PoolSaturated firing",
            "source": "alert",
            "holders": [
                {
                    **POOL_ALERT,
                    "status": "firing",
                    "annotations": {"summary": "PoolSaturated is firing"},
                    "startsAt": "2023-11-14T22:30:00Z",
                }
            ],
            "open_until": T0_MS + 246_000,
            "level": 1,
            "last_reset": T0_MS + 60_000,
            "generation": 1,
            "call": "a-1",
        }
        assert list(r.path.dispatcher.pending) == ["a-6"]
        for starts in ("2023-11-14T22:00:00Z", "2023-11-14T22:30:00Z"):
            _, body = await r.post("/alerts", webhook(_pool(starts=starts)))
            assert (body["actions"], body["duplicates"]) == ([], 1)
        await r.settle()
        assert [(c.path, c.idempotency_key, c.body["reason"]) for c in r.calls()] == [
            ("/v1/cache/flush", "a-6", "drill")
        ]


async def test_our_journal_means_the_same_to_a_version_1_reader(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Without ``type`` and ``version`` our lines restore the same state, as 0.1.0 reads them."""
    demo = DemoApp()
    async with rig(tmp_path / "ours", registry, demo=demo) as r:
        await r.post("/alerts", webhook(_pool(), alert("MapGrowing", action="cache_flush")))
        await r.settle()
        await r.post("/v1/circuit/break", {"reason": "hold", "hold": True})
        await r.settle()
        await r.in_flight("/v1/cache/flush", "/v1/cache/flush", {"reason": "drill"})
        await r.path.dispatcher.drain(0.0)
        ours = r.path.journal.path.read_bytes()
    new = ("type", "version")
    old = tmp_path / "old" / "state" / JOURNAL_FILE
    old.parent.mkdir(parents=True)
    old.write_bytes(
        b"".join(
            orjson.dumps({k: v for k, v in orjson.loads(line).items() if k not in new}) + b"\n"
            for line in ours.splitlines()
        )
    )
    compacted = []
    for name in ("ours", "old"):
        async with rig(tmp_path / name, CollectorRegistry()) as r:
            # The snapshot each start writes is all it restored.
            compacted.append(r.path.journal.path.read_bytes().splitlines()[0])
            assert (r.path.breaker.state.state, list(r.path.dispatcher.pending)) == (
                "held",
                ["a-4"],
            )
    assert compacted[0] == compacted[1]


async def test_a_version_3_journal_restores_what_it_restored_before(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Version 3 lines (no ``refused``) restore the same circuit, dedupe and pending call
    as our version 4 lines, with no refused break; the start rewrites them as version 4."""
    demo = DemoApp()
    async with rig(tmp_path / "ours", registry, demo=demo) as r:
        await r.post("/alerts", webhook(_pool(), alert("MapGrowing", action="cache_flush")))
        await r.settle()
        await r.in_flight("/v1/cache/flush", "/v1/cache/flush", {"reason": "drill"})
        await r.path.dispatcher.drain(0.0)
        ours = r.path.journal.path.read_bytes()
    v3 = tmp_path / "v3" / "state" / JOURNAL_FILE
    v3.parent.mkdir(parents=True)
    lines = [orjson.loads(line) for line in ours.splitlines()]
    assert {(e["version"], "refused" in e) for e in lines if e["type"] != "done"} == {(4, True)}
    v3.write_bytes(
        b"".join(
            orjson.dumps({**{k: v for k, v in e.items() if k != "refused"}, "version": 3}) + b"\n"
            for e in lines
        )
    )
    compacted = []
    for name in ("ours", "v3"):
        async with rig(tmp_path / name, CollectorRegistry()) as r:
            compacted.append(orjson.loads(r.path.journal.path.read_bytes().splitlines()[0]))
            assert r.path.dispatcher.memory.refused == {}
            assert (r.path.breaker.state.state, list(r.path.dispatcher.pending)) == (
                "open",
                ["a-3"],
            )
    assert compacted[0] == compacted[1]
    assert (compacted[1]["version"], compacted[1]["refused"]) == (4, {})


def test_version_3_lines_read_with_no_refused_breaks(tmp_path: Path) -> None:
    """A version 3 decision and snapshot read as version 4 ones with ``refused`` empty,
    their version kept: a circuit call that gave up is pending again only before 3."""
    circuit = orjson.dumps(msgspec.to_builtins(_CLOSED))
    (tmp_path / JOURNAL_FILE).write_bytes(
        b'{"type":"snapshot","version":3,"at":1,"circuit":' + circuit + b',"seen":{},'
        b'"cooldowns":{},"actions":[]}\n'
        b'{"type":"decision","version":3,"at":2,"seen":{"k":2}}\n'
    )
    assert list(Journal(tmp_path, CollectorRegistry()).replay()) == [
        Snapshot(version=3, at=1, circuit=_CLOSED, seen={}, cooldowns={}, actions=()),
        Decision(version=3, at=2, seen={"k": 2}),
    ]
    gave_up = OutcomeRecord("a-1", "gave_up")
    assert [still_pending(Done(version=v, at=3, done=(gave_up,)), gave_up) for v in (2, 3, 4)] == [
        True,
        False,
        False,
    ]
