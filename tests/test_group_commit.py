"""Group commit: deliveries arriving together share one fsync, each answered once durable."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

from actions_support import Disk, alert, journal_entries, rig, until, webhook
from prometheus_client import CollectorRegistry

from sidecar.actions.entries import Decision
from sidecar.actions.journal import JOURNAL_FILE, Journal
from sidecar.actions.receiver import WebhookAlert
from sidecar.core.model import Alert
from sidecar.core.validation import convert

REFUSED = {"status": "error", "error": "cannot journal the actions, nothing was done; retry later"}


def _alert(n: int) -> Alert:
    raw = alert("CacheGrowing", action="circuit_break", n=str(n))
    return convert(raw, WebhookAlert).to_alert()


def _held_by(view: dict[str, object]) -> list[str]:
    held = view["held_by"]
    assert isinstance(held, list)
    return [h["labels"]["n"] for h in held]


def _seen_order(path: Path) -> list[str]:
    out: list[str] = []
    for e in journal_entries(path):
        if e["type"] == "decision":
            out.extend(e["seen"])
    return out


async def test_a_burst_shares_one_fsync_and_replays_in_the_order_decided(
    tmp_path: Path, registry: CollectorRegistry, disk: Disk
) -> None:
    """While one commit is on the disk, eight deliveries queue; the next commit takes them
    all in one write and one fsync, each is answered only then, and a restart from the
    file as it was then replays them in exactly that order."""
    async with rig(tmp_path, registry) as r:
        receiver = r.path.receiver
        journal = r.path.journal
        # The break is decided, called and confirmed first: from then on, each alert
        # only joins the open circuit, a decision journaled without a call.
        assert len((await receiver.deliver([_alert(0)], "alertmanager")).actions) == 1
        await r.settle()
        await journal.idle()
        base_calls = disk.calls
        base_commits = r.metric("leak_sidecar_journal_commits_total") or 0.0
        base_entries = r.metric("leak_sidecar_journal_entries_total") or 0.0
        disk.hold_call = disk.calls + 1
        first = asyncio.create_task(receiver.deliver([_alert(1)], "alertmanager"))
        await asyncio.to_thread(disk.entered.wait, 10)
        burst = [
            asyncio.create_task(receiver.deliver([_alert(n)], "alertmanager")) for n in range(2, 10)
        ]
        await until(lambda: journal.queued == 8)
        assert not any(t.done() for t in [first, *burst])  # nothing answered before durable
        disk.release.set()
        results = await asyncio.gather(first, *burst)
        assert [(len(d.actions), d.duplicates) for d in results] == [(0, 0)] * 9
        assert disk.calls == base_calls + 2
        assert r.metric("leak_sidecar_journal_commits_total") == base_commits + 2
        assert r.metric("leak_sidecar_journal_entries_total") == base_entries + 9
        # The crash: the file as it is now, taken before anything else writes.
        crashed = tmp_path / "crashed" / "state"
        crashed.mkdir(parents=True)
        shutil.copy(journal.path, crashed / JOURNAL_FILE)
        order = _seen_order(journal.path)
        assert [k.split(":")[1] for k in order] == ["firing"] * 10
        assert _held_by(r.path.breaker.state.view()) == [str(n) for n in range(10)]
    async with rig(tmp_path / "crashed", CollectorRegistry()) as again:
        state = again.path.breaker.state
        assert state.state == "open"
        assert _held_by(state.view()) == [str(n) for n in range(10)]
        # Dedupe memory in the order decided: the same keys, the same order.
        assert list(again.path.dispatcher.memory.seen) == order


async def test_a_failed_fsync_refuses_its_whole_group_and_journals_none_of_it(
    tmp_path: Path, registry: CollectorRegistry, disk: Disk
) -> None:
    """The fsync of a group fails after its bytes were written: every delivery of the
    group is answered 503, none of its lines stays in the journal, nothing of it is
    remembered (circuit holders, dedupe), and the same deliveries retried succeed."""
    async with rig(tmp_path, registry) as r:
        journal = r.path.journal
        body = [webhook(alert("CacheGrowing", action="circuit_break", n=str(n))) for n in range(6)]
        status, answer = await r.post("/alerts", body[0])
        assert (status, answer["actions"]) == (200, [{"id": "a-1", "action": "circuit_break"}])
        await r.settle()
        await journal.idle()
        before = journal_entries(journal.path)
        disk.hold_call = disk.calls + 1
        disk.fail_call = disk.calls + 2
        first = asyncio.create_task(r.post("/alerts", body[1]))
        await asyncio.to_thread(disk.entered.wait, 10)
        group = [asyncio.create_task(r.post("/alerts", b)) for b in body[2:]]
        await until(lambda: journal.queued == 4)
        disk.release.set()
        status, answer = await first
        assert (status, answer["actions"], answer["duplicates"]) == (200, [], 0)
        assert await asyncio.gather(*group) == [(503, REFUSED)] * 4
        assert r.metric("leak_sidecar_journal_write_failures_total") == 1.0
        assert r.metric("leak_sidecar_webhook_requests_total", code="503") == 4.0
        entries = journal_entries(journal.path)
        assert entries[: len(before)] == before
        assert [e["type"] for e in entries[len(before) :]] == ["decision"]
        assert list(entries[-1]["seen"]) == _seen_order(journal.path)[-1:]
        resp = await r.client.get("/v1/circuit")
        assert _held_by(await resp.json()) == ["0", "1"]
        # Retried, as Alertmanager does: not duplicates, since nothing was remembered.
        for b in body[2:]:
            status, answer = await r.post("/alerts", b)
            assert (status, answer["duplicates"]) == (200, 0)
        resp = await r.client.get("/v1/circuit")
        assert _held_by(await resp.json()) == ["0", "1", "2", "3", "4", "5"]
        # Six decisions, whole: no line of the failed group was left to skip.
        assert len(_seen_order(journal.path)) == 6
        assert len(list(journal.replay())) == len(journal_entries(journal.path))
        assert r.metric("leak_sidecar_journal_corrupt_lines_total") == 0.0


async def test_a_hook_that_crashes_does_not_stall_its_group(tmp_path: Path) -> None:
    """A bug in one entry's hook is logged; the others of its group are still answered."""
    journal = Journal(tmp_path, CollectorRegistry())
    seen: list[int] = []

    def hook(n: int) -> Callable[[], None]:
        def durable() -> None:
            if n == 1:
                raise RuntimeError("bug")
            seen.append(n)

        return durable

    futures = [journal.submit(Decision(at=n), durable=hook(n)) for n in range(3)]
    await asyncio.gather(*futures)
    await journal.close()
    assert seen == [0, 2]
    assert list(journal.replay()) == [Decision(at=0), Decision(at=1), Decision(at=2)]


async def test_compaction_amid_bursts_loses_nothing(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Compacting every few lines while bursts queue behind it: the file, replayed after a
    crash, holds exactly what was decided, every decision once."""
    async with rig(tmp_path, registry, actions={"journal_max_entries": 3}) as r:
        receiver = r.path.receiver
        for burst in range(4):
            alerts = [_alert(burst * 10 + n) for n in range(6)]
            await asyncio.gather(*(receiver.deliver([a], "alertmanager") for a in alerts))
        await r.settle()
        await r.path.journal.idle()
        held = _held_by(r.path.breaker.state.view())
        seen = list(r.path.dispatcher.memory.seen)
        # Compacted while running: far fewer lines than the 24 decisions.
        assert len(journal_entries(r.path.journal.path)) < 12
        crashed = tmp_path / "crashed" / "state"
        crashed.mkdir(parents=True)
        shutil.copy(r.path.journal.path, crashed / JOURNAL_FILE)
    assert held == [str(b * 10 + n) for b in range(4) for n in range(6)]
    async with rig(tmp_path / "crashed", CollectorRegistry()) as again:
        assert _held_by(again.path.breaker.state.view()) == held
        assert list(again.path.dispatcher.memory.seen) == seen
