"""The journal: fsynced appends, tolerant replay, atomic compaction, and restart from it."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from actions_support import alert, journal_entries, rig, webhook
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from sidecar.actions.journal import JOURNAL_FILE, Journal
from sidecar.core.errors import JournalError
from sidecar.demo.app import DemoApp, Fault


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_append_writes_one_fsynced_line_per_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each entry is one JSON line, fsynced before append returns; replay reads them back."""
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    journal = Journal(tmp_path / "state", CollectorRegistry())
    await journal.append({"a": 1})
    assert len(synced) == 1
    await journal.append({"b": [2, "x"]})
    assert len(synced) == 2
    await journal.close()
    assert (tmp_path / "state" / JOURNAL_FILE).read_bytes() == b'{"a":1}\n{"b":[2,"x"]}\n'
    assert list(journal.replay()) == [{"a": 1}, {"b": [2, "x"]}]
    assert journal.entries == 2
    assert oct((tmp_path / "state" / JOURNAL_FILE).stat().st_mode & 0o777) == "0o600"


def test_corrupt_and_truncated_lines_are_skipped_with_a_warning(tmp_path: Path) -> None:
    """Damaged lines are counted and logged; the readable entries around them survive."""
    path = tmp_path / JOURNAL_FILE
    path.write_bytes(b'{"a":1}\n\x00\x01garbage\n[1,2]\n\n{"b":2}\n{"c":')
    registry = CollectorRegistry()
    journal = Journal(tmp_path, registry)
    with capture_logs() as events:
        assert list(journal.replay()) == [{"a": 1}, {"b": 2}]
    corrupt = [e for e in events if e["event"] == "journal.corrupt_line"]
    assert [e["line"] for e in corrupt] == [2, 3, 6]
    assert corrupt[1]["error"] == "not a JSON object"
    assert registry.get_sample_value("leak_sidecar_journal_corrupt_lines_total") == 3.0


def test_missing_journal_replays_nothing(tmp_path: Path) -> None:
    """A first start has no journal: nothing to replay, no error."""
    assert list(Journal(tmp_path / "new", CollectorRegistry()).replay()) == []


async def test_cancelled_append_still_finishes_its_write_before_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write in its thread cannot be cut: cancelling the caller waits for it under the lock."""
    real_fsync, real_close = os.fsync, os.close
    entered = threading.Event()
    order: list[str] = []

    def slow_fsync(fd: int) -> None:
        entered.set()
        time.sleep(0.2)
        real_fsync(fd)
        order.append("fsync")

    def close(fd: int) -> None:
        order.append("close")
        real_close(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    monkeypatch.setattr(os, "close", close)
    journal = Journal(tmp_path, CollectorRegistry())
    task = asyncio.create_task(journal.append({"a": 1}))
    await asyncio.to_thread(entered.wait, 5)
    task.cancel()
    await journal.close()  # waits for the write, then closes
    assert task.cancelled()
    assert order == ["fsync", "close"]
    assert (tmp_path / JOURNAL_FILE).read_bytes() == b'{"a":1}\n'


async def test_rewrite_replaces_atomically_and_leaves_no_temp_file(tmp_path: Path) -> None:
    """Compaction swaps in the live entries; appends continue on the new file."""
    journal = Journal(tmp_path, CollectorRegistry())
    for i in range(5):
        await journal.append({"i": i})
    await journal.rewrite(lambda: [{"live": True}])
    await journal.append({"after": 1})
    await journal.close()
    assert journal_entries(tmp_path / JOURNAL_FILE) == [{"live": True}, {"after": 1}]
    assert _names(tmp_path) == [JOURNAL_FILE]
    assert journal.entries == 2


async def test_failed_write_raises_and_the_next_entry_starts_a_fresh_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write cut off mid-line is an error; the torn line is later skipped, not merged."""
    registry = CollectorRegistry()
    journal = Journal(tmp_path, registry)
    await journal.append({"a": 1})
    real_write = os.write

    def torn(fd: int, data: Any) -> int:
        real_write(fd, bytes(data)[:5])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", torn)
    message = f"cannot write journal {journal.path}: [Errno 28] No space left on device"
    with pytest.raises(JournalError, match=f"^{re.escape(message)}$"):
        await journal.append({"b": 2})
    monkeypatch.setattr(os, "write", real_write)
    await journal.append({"c": 3})
    await journal.close()
    assert list(journal.replay()) == [{"a": 1}, {"c": 3}]
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
    demo.faults.add(Fault(path="/v1/circuit/break", delay=30, times=1))
    async with rig(tmp_path, registry, demo=demo) as r:
        await r.post("/alerts", webhook(alert("PoolSaturated", action="circuit_break")))
        await asyncio.sleep(0.1)  # the call is in flight, the app sits on it
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
    async with rig(tmp_path, registry, actions={"journal_max_bytes": 8000}) as r:
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
    assert max(sizes) < 8000 + 2700
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
