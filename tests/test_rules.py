"""The rule engine: alert state machine, group evaluation, schedule, notifications, restarts."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import shutil
import stat
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sidecar.core.config import RulesConfig
from sidecar.core.model import Alert, LabelSet, fingerprint
from sidecar.rules.alerting import AlertingRule, AlertState
from sidecar.rules.engine import RuleEngine, eval_group
from sidecar.rules.files import load_rules
from sidecar.rules.forstate import FILE_NAME, ForEntry
from sidecar.rules.groups import Group, build_groups, runtime_groups
from sidecar.rules.rulefmt import GroupSpec
from sidecar.store import Store

MIN = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % (60 * MIN)  # a whole hour, in ms


def specs(tmp_path: Path, text: str) -> list[GroupSpec]:
    path = tmp_path / "rules.yml"
    path.write_text(text, encoding="utf-8")
    return load_rules([str(path)])


def ls(**labels: str) -> LabelSet:
    return tuple(sorted(labels.items()))


def feed(store: Store, t: int, **values: float) -> None:
    """One scrape: each keyword is a series name with label pod="a"."""
    store.ingest(t, {ls(__name__=name, pod="a"): v for name, v in values.items()})


ALERT = """\
groups:
  - name: g
    rules:
      - alert: Big
        expr: x > 10
        for: 2m
        labels: {severity: page}
        annotations: {summary: "{{ $value }}"}
"""


def one_rule(tmp_path: Path, text: str = ALERT) -> tuple[Group, AlertingRule]:
    (group,) = build_groups(specs(tmp_path, text), MIN, {}, "", restored=True)
    rule = group.rules[0]
    assert isinstance(rule, AlertingRule)
    return group, rule


def test_pending_firing_resolved_and_resent(tmp_path: Path) -> None:
    """Pending is never sent; firing is sent then re-sent after the resend delay; resolved
    is sent at once with endsAt = resolvedAt, re-sent, and dropped after 15 minutes."""
    group, rule = one_rule(tmp_path)
    store = Store(retention_ms=3_600_000, max_series=100)
    sent: dict[int, list[tuple[str, int | None]]] = {}
    for step in range(25):
        t = T0 + step * MIN
        feed(store, t, x=20 if step < 4 else 1)
        eval_group(group, store, t)
        due = rule.to_send(t, resend_delay_ms=MIN, interval_ms=MIN)
        sent[step] = [(str(a.state), a.resolved_at or a.valid_until) for a in due]
    assert sent[0] == []  # pending for 2m
    assert sent[1] == []
    assert sent[2] == [("firing", T0 + 2 * MIN + 4 * MIN)]  # valid for 4 x max(delay, interval)
    assert sent[3] == []  # last sent exactly one resend delay ago: not yet
    assert sent[4] == [("inactive", T0 + 4 * MIN)]  # resolved: sent at once
    assert sent[5] == []
    assert sent[6] == [("inactive", T0 + 4 * MIN)]  # re-sent every resend delay
    assert sent[18] == [("inactive", T0 + 4 * MIN)]
    assert sent[19] == []  # 15m after resolution it is forgotten
    assert rule.active == {}


def test_state_transitions_and_alert_fields(tmp_path: Path) -> None:
    """An alert keeps activeAt while active, fires after `for`, updates value and annotations."""
    group, rule = one_rule(tmp_path)
    store = Store(retention_ms=3_600_000, max_series=100)
    key = ls(alertname="Big", pod="a", severity="page")
    for step, value in enumerate([20, 30, 40]):
        feed(store, T0 + step * MIN, x=value)
        eval_group(group, store, T0 + step * MIN)
    alert = rule.active[key]
    assert (alert.state, alert.active_at, alert.fired_at, alert.value) == (
        AlertState.FIRING,
        T0,
        T0 + 2 * MIN,
        40.0,
    )
    assert alert.annotations == (("summary", "40"),)
    assert (rule.health, rule.last_error, rule.state()) == ("ok", "", AlertState.FIRING)


def test_pending_alert_that_clears_is_dropped_unsent(tmp_path: Path) -> None:
    """A pending alert whose condition stops holding disappears without a notification."""
    group, rule = one_rule(tmp_path)
    store = Store(retention_ms=3_600_000, max_series=100)
    for step, value in enumerate([20, 1]):
        feed(store, T0 + step * MIN, x=value)
        eval_group(group, store, T0 + step * MIN)
        assert rule.to_send(T0 + step * MIN, MIN, MIN) == []
    assert rule.active == {}


def test_keep_firing_for(tmp_path: Path) -> None:
    """A firing alert keeps firing for keep_firing_for after its condition clears."""
    text = ALERT.replace("for: 2m", "for: 0s\n        keep_firing_for: 2m")
    group, rule = one_rule(tmp_path, text)
    store = Store(retention_ms=3_600_000, max_series=100)
    states = []
    for step, value in enumerate([20, 1, 1, 1]):
        feed(store, T0 + step * MIN, x=value)
        eval_group(group, store, T0 + step * MIN)
        (alert,) = rule.active.values()
        states.append((str(alert.state), alert.keep_firing_since))
    assert states == [
        ("firing", None),
        ("firing", T0 + MIN),
        ("firing", T0 + MIN),
        ("inactive", T0 + MIN),
    ]


def test_limit_and_duplicates_fail_the_rule_and_the_group_goes_on(tmp_path: Path) -> None:
    """Too many alerts, or two results with one label set, mark the rule unhealthy; later
    rules of the group still run and the next evaluation tries again."""
    text = """\
groups:
  - name: g
    limit: 1
    rules:
      - alert: Many
        expr: x > 0
      - alert: Same
        expr: '{__name__=~"x|y"}'
      - record: ok
        expr: x
"""
    (group,) = build_groups(specs(tmp_path, text), MIN, {}, "", restored=True)
    store = Store(retention_ms=3_600_000, max_series=100)
    store.ingest(T0, {ls(__name__="x", pod="a"): 1, ls(__name__="x", pod="b"): 1,
                      ls(__name__="y", pod="a"): 1})  # fmt: skip
    ok = eval_group(group, store, T0)
    assert ok == []
    assert [(r.name, r.health, r.last_error) for r in group.rules] == [
        ("Many", "err", "exceeded limit of 1 with 2 alerts"),
        (
            "Same",
            "err",
            "vector contains metrics with the same labelset after applying alert labels",
        ),
        ("ok", "err", "exceeded limit of 1 with 2 series"),
    ]
    assert group.failed == ["Many", "Same", "ok"]
    store.ingest(T0 + MIN, {ls(__name__="x", pod="a"): 1})
    eval_group(group, store, T0 + MIN)
    assert [(r.name, r.health) for r in group.rules] == [
        ("Many", "ok"),
        ("Same", "ok"),
        ("ok", "ok"),
    ]


class FakeTime:
    """Wall and monotonic clocks that only move when the engine sleeps (or a test says)."""

    def __init__(self, start_s: float, stop_after_s: float) -> None:
        self.now = start_s
        self.stop_at = start_s + stop_after_s
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now - 1_000_000.0

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.now + seconds > self.stop_at:
            raise _Stop
        self.now += seconds
        await asyncio.sleep(0)


class _Stop(Exception):
    pass


async def run_until_stopped(engine: RuleEngine) -> None:
    with pytest.raises(ExceptionGroup) as info:
        await engine.run(asyncio.Event())
    assert info.group_contains(_Stop)


RECORD = """\
groups:
  - name: slots
    rules:
      - record: tick
        expr: vector(1)
      - alert: Always
        expr: vector(1)
        labels: {severity: info, cluster: mine}
"""


async def test_schedule_is_slotted_and_alerts_are_sent(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Evaluations fall on interval-aligned slots offset per group; ALERTS appear once the
    for state is restored (after the second evaluation); alerts go out as model.Alert."""
    fake = FakeTime(start_s=T0 / 1000 + 7.25, stop_after_s=4 * 60)
    sent: list[list[Alert]] = []

    async def send(alerts: list[Alert]) -> None:
        sent.append(alerts)

    store = Store(retention_ms=3_600_000, max_series=100)
    cfg = RulesConfig.validate(
        {"evaluation_interval": "1m", "external_labels": {"cluster": "eu", "region": "r1"},
         "external_url": "https://sidecar.example.com", "resend_delay": "1m"}
    )  # fmt: skip
    engine = RuleEngine(runtime_groups(specs(tmp_path, RECORD), cfg), store, cfg,
                        registry=registry, send=send,
                        state_dir=None, clock=fake.clock, monotonic=fake.monotonic,
                        sleep=fake.sleep)  # fmt: skip
    await run_until_stopped(engine)
    (series,) = store.by_name("tick")
    stamps = list(series.ts[series.head :])
    offset = stamps[0] % MIN
    assert stamps == [stamps[0] + i * MIN for i in range(4)]
    assert T0 + 7250 < stamps[0] <= T0 + 7250 + MIN
    assert (
        offset == int(fingerprint({"file": str(tmp_path / "rules.yml"), "name": "slots"}), 16) % MIN
    )
    alerts_ts = [list(s.ts) for s in store.by_name("ALERTS")]
    assert alerts_ts == [stamps[2:]]  # not written until restored
    first = sent[0][0]
    assert first == Alert(
        status="firing",
        labels={"alertname": "Always", "severity": "info", "cluster": "mine", "region": "r1"},
        annotations={},
        starts_at=dt.datetime.fromtimestamp(stamps[0] / 1000, tz=dt.UTC),
        ends_at=dt.datetime.fromtimestamp((stamps[0] + 4 * MIN) / 1000, tz=dt.UTC),
        generator_url="https://sidecar.example.com/graph?g0.expr=vector%281%29&g0.tab=1",
        fingerprint=fingerprint({"alertname": "Always", "severity": "info", "cluster": "mine",
                                 "region": "r1"}),
    )  # fmt: skip
    assert [len(batch) for batch in sent] == [1, 1]  # at 0 and after the 1m resend delay
    assert (
        registry.get_sample_value("leak_sidecar_alerts", {"alertname": "Always", "state": "firing"})
        == 1
    )
    assert (
        registry.get_sample_value(
            "leak_sidecar_alerts", {"alertname": "Always", "state": "pending"}
        )
        == 0
    )
    count = registry.get_sample_value(
        "leak_sidecar_rule_evaluation_duration_seconds_count", {"rule_group": engine.groups[0].key}
    )
    assert count == 8  # two rules, four evaluations


async def test_slow_evaluation_never_stacks(tmp_path: Path, registry: CollectorRegistry) -> None:
    """An evaluation that overruns two slots is followed at once by one on the grid; the
    skipped slot is counted as missed."""
    fake = FakeTime(start_s=T0 / 1000, stop_after_s=5 * 60)
    calls = 0

    async def slow_send(alerts: list[Alert]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            fake.now += 150  # the first hand-off takes 2.5 intervals

    store = Store(retention_ms=3_600_000, max_series=100)
    cfg = RulesConfig.validate({"evaluation_interval": "1m"})
    engine = RuleEngine(runtime_groups(specs(tmp_path, RECORD), cfg), store, cfg,
                        registry=registry, send=slow_send,
                        state_dir=None, clock=fake.clock, monotonic=fake.monotonic,
                        sleep=fake.sleep)  # fmt: skip
    await run_until_stopped(engine)
    (series,) = store.by_name("tick")
    stamps = list(series.ts[series.head :])
    first = stamps[0]
    assert stamps[:3] == [first, first + 2 * MIN, first + 3 * MIN]
    key = engine.groups[0].key
    assert (
        registry.get_sample_value(
            "leak_sidecar_rule_group_iterations_missed_total", {"rule_group": key}
        )
        == 1
    )


async def test_failed_send_and_failed_rule_do_not_stop_the_engine(
    tmp_path: Path, registry: CollectorRegistry, log_stream: io.StringIO
) -> None:
    """A send that raises is logged; a rule that errors is counted and the loop goes on."""
    text = RECORD + "      - alert: Broken\n        expr: '{__name__=~\"a|b\"}'\n"
    fake = FakeTime(start_s=T0 / 1000, stop_after_s=3 * 60)

    async def broken_send(alerts: list[Alert]) -> None:
        raise ConnectionError("receiver down")

    store = Store(retention_ms=3_600_000, max_series=100)
    store.ingest(T0, {ls(__name__="a", pod="p"): 1, ls(__name__="b", pod="p"): 1})
    cfg = RulesConfig.validate({"evaluation_interval": "1m"})
    engine = RuleEngine(runtime_groups(specs(tmp_path, text), cfg), store, cfg,
                        registry=registry, send=broken_send,
                        state_dir=None, clock=fake.clock, monotonic=fake.monotonic,
                        sleep=fake.sleep)  # fmt: skip
    await run_until_stopped(engine)
    key = engine.groups[0].key
    assert (
        registry.get_sample_value(
            "leak_sidecar_rule_evaluation_failures_total", {"rule_group": key}
        )
        == 3
    )
    events = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert [e["event"] for e in events if e["event"] == "rules.send_failed"] == [
        "rules.send_failed"
    ] * 2
    failed = [e for e in events if e["event"] == "rules.evaluation_failed"]
    assert failed[0]["rule"] == "Broken"
    assert (
        failed[0]["error"]
        == "vector contains metrics with the same labelset after applying alert labels"
    )
    assert len(next(iter(store.by_name("tick")))) == 3


async def test_engine_without_rules_idles_until_stopped(registry: CollectorRegistry) -> None:
    """With no rule files the engine's loop waits for ``stop`` instead of returning."""

    async def send(alerts: list[Alert]) -> None:
        return None

    engine = RuleEngine([], Store(retention_ms=1, max_series=1), RulesConfig(),
                        registry=registry, send=send, state_dir=None)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    await asyncio.sleep(0.01)
    assert not task.done()
    stop.set()
    async with asyncio.timeout(5):
        await task


async def test_engine_stops_between_evaluations(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Setting ``stop`` ends the engine's loop while its groups wait for their next slot."""

    async def send(alerts: list[Alert]) -> None:
        return None

    cfg = RulesConfig.validate({"evaluation_interval": "1h"})
    store = Store(retention_ms=3_600_000, max_series=100)
    engine = RuleEngine(runtime_groups(specs(tmp_path, RECORD), cfg), store, cfg,
                        registry=registry, send=send, state_dir=None)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    await asyncio.sleep(0.01)
    assert not task.done()
    stop.set()
    async with asyncio.timeout(5):
        await task
    assert list(store.by_name("tick")) == []


FOR_10M = ALERT.replace("for: 2m", "for: 10m")


def engine_for(tmp_path: Path, store: Store, registry: CollectorRegistry, **cfg: str) -> RuleEngine:
    async def send(alerts: list[Alert]) -> None:
        return None

    config = RulesConfig.validate({"evaluation_interval": "1m", **cfg})
    return RuleEngine(runtime_groups(specs(tmp_path, FOR_10M), config), store, config,
                      registry=registry, send=send,
                      state_dir=tmp_path / "state")  # fmt: skip


async def test_for_state_survives_a_restart(tmp_path: Path) -> None:
    """An alert pending for 2m before a restart keeps that progress: its activeAt moves
    forward by the downtime (Prometheus's RestoreForState), so it fires 10m after it
    became active, minus nothing it had already waited."""
    store = Store(retention_ms=3_600_000, max_series=100)
    first = engine_for(tmp_path, store, CollectorRegistry(), for_grace_period="1m")
    group = first.groups[0]
    for step in range(3):
        feed(store, T0 + step * MIN, x=20)
        await first.iterate(group, T0 + step * MIN)
        if step == 1:
            first.restore(group, T0 + step * MIN)
    saved = json.loads((tmp_path / "state" / FILE_NAME).read_text())
    assert saved == {
        "version": 1,
        "groups": {
            group.key: [
                {"alert": "Big", "labels": {"alertname": "Big", "pod": "a", "severity": "page"},
                 "active_at": T0 // 1000, "seen": T0 + 2 * MIN}
            ]
        },
    }  # fmt: skip
    # Down from T0+2m to T0+5m; the new process starts with an empty store.
    store2 = Store(retention_ms=3_600_000, max_series=100)
    second = engine_for(tmp_path, store2, CollectorRegistry(), for_grace_period="1m")
    group2 = second.groups[0]
    for step in (5, 6):
        feed(store2, T0 + step * MIN, x=20)
        await second.iterate(group2, T0 + step * MIN)
    second.restore(group2, T0 + 6 * MIN)
    (rule,) = group2.alerting()
    (alert,) = rule.active.values()
    assert alert.active_at == T0 + 4 * MIN  # 0 + (6m - 2m down)
    states = []
    for step in (13, 14):
        feed(store2, T0 + step * MIN, x=20)
        await second.iterate(group2, T0 + step * MIN)
        states.append(str(rule.state()))
    assert states == ["pending", "firing"]


async def test_restore_gives_a_nearly_due_alert_the_grace_period(tmp_path: Path) -> None:
    """An alert that needed less than the grace period to fire waits exactly the grace
    period; one seen longer ago than the outage tolerance starts afresh."""
    store = Store(retention_ms=3_600_000, max_series=100)
    first = engine_for(tmp_path, store, CollectorRegistry())
    group = first.groups[0]
    for step in range(10):
        feed(store, T0 + step * MIN, x=20)
        await first.iterate(group, T0 + step * MIN)
        if step == 1:
            first.restore(group, T0 + step * MIN)
    store2 = Store(retention_ms=3_600_000, max_series=100)
    second = engine_for(tmp_path, store2, CollectorRegistry())
    for step in (11, 12):
        feed(store2, T0 + step * MIN, x=20)
        await second.iterate(second.groups[0], T0 + step * MIN)
    second.restore(second.groups[0], T0 + 12 * MIN)
    (alert,) = second.groups[0].alerting()[0].active.values()
    assert alert.active_at == T0 + 12 * MIN + 10 * MIN - 10 * MIN  # now + grace - for
    store3 = Store(retention_ms=3_600_000, max_series=100)
    third = engine_for(tmp_path, store3, CollectorRegistry(), outage_tolerance="30m")
    for step in (50, 51):
        feed(store3, T0 + step * MIN, x=20)
        await third.iterate(third.groups[0], T0 + step * MIN)
    third.restore(third.groups[0], T0 + 51 * MIN)
    (alert,) = third.groups[0].alerting()[0].active.values()
    assert alert.active_at == T0 + 50 * MIN


async def test_for_state_file_is_written_only_when_it_changes(tmp_path: Path) -> None:
    """An evaluation that changes no for state leaves the file alone; an active alert is
    rewritten at every evaluation, since its last-seen time moves."""
    store = Store(retention_ms=3_600_000, max_series=100)
    engine = engine_for(tmp_path, store, CollectorRegistry())
    group = engine.groups[0]
    path = tmp_path / "state" / FILE_NAME
    engine.restore(group, T0)
    written = []
    for step, value in enumerate([1, 1, 20, 20, 1]):
        path.unlink(missing_ok=True)
        feed(store, T0 + step * MIN, x=value)
        await engine.iterate(group, T0 + step * MIN)
        written.append(json.loads(path.read_text())["groups"] if path.exists() else None)
    entry = {"alert": "Big", "labels": {"alertname": "Big", "pod": "a", "severity": "page"},
             "active_at": (T0 + 2 * MIN) // 1000}  # fmt: skip
    assert written == [
        {group.key: []},
        None,
        {group.key: [{**entry, "seen": T0 + 2 * MIN}]},
        {group.key: [{**entry, "seen": T0 + 3 * MIN}]},
        {group.key: []},
    ]


def test_broken_state_file_is_ignored(
    tmp_path: Path, registry: CollectorRegistry, log_stream: io.StringIO
) -> None:
    """A state file that is not ours starts the engine with no for state, and says so."""
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / FILE_NAME).write_text('{"version": 1, "groups": {"g": [{"alert": 1}]}}')
    engine = engine_for(tmp_path, Store(retention_ms=1, max_series=1), registry)
    assert engine.for_state.groups == {}
    (event,) = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    # The decoder's own words follow (they change between msgspec releases): ours are pinned.
    assert event["event"] == "rules.for_state_invalid"
    assert event["error"]


def test_state_file_of_another_version_is_ignored(
    tmp_path: Path, registry: CollectorRegistry, log_stream: io.StringIO
) -> None:
    """A for-state file of a version this code does not know is logged and not read."""
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / FILE_NAME).write_text('{"version": 2, "groups": {"x": 1}}')
    engine = engine_for(tmp_path, Store(retention_ms=1, max_series=1), registry)
    assert engine.for_state.groups == {}
    (event,) = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert (event["event"], event["error"]) == (
        "rules.for_state_invalid",
        "unsupported version 2, expected 1",
    )


async def test_state_write_failure_is_logged_not_raised(
    tmp_path: Path, log_stream: io.StringIO
) -> None:
    """A state directory that cannot be written costs the for state, not the evaluation."""
    (tmp_path / "state").write_text("a file where the directory should be")
    store = Store(retention_ms=3_600_000, max_series=100)
    engine = engine_for(tmp_path, store, CollectorRegistry())
    group = engine.groups[0]
    engine.restore(group, T0)
    feed(store, T0, x=20)
    await engine.iterate(group, T0)
    assert str(group.alerting()[0].state()) == "pending"
    events = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert [
        (e["event"], e["error"]) for e in events if e["event"].startswith("rules.for_state")
    ] == [
        ("rules.for_state_unreadable", "Not a directory"),
        ("rules.for_state_write_failed", "File exists"),
    ]


async def test_state_file_is_fsynced_with_its_directory_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saving the for state fsyncs the file, then its directory, in a worker thread."""
    synced: list[tuple[bool, bool]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        synced.append((is_dir, threading.current_thread() is threading.main_thread()))
        real_fsync(fd)

    store = Store(retention_ms=3_600_000, max_series=100)
    engine = engine_for(tmp_path, store, CollectorRegistry())
    group = engine.groups[0]
    engine.restore(group, T0)
    feed(store, T0, x=20)
    monkeypatch.setattr(os, "fsync", fsync)
    await engine.iterate(group, T0)
    assert synced == [(False, False), (True, False)]
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [FILE_NAME]


LEAKS = """\
groups:
  - name: leaks
    rules:
      - alert: CacheGrowing
        expr: cache_keys > 10
        for: 10m
        labels: {severity: page, action: cache_flush}
        annotations: {summary: "{{ $labels.pod }} holds {{ $value }} keys"}
"""
FOR_STATE_0_1_0 = Path(__file__).parent / "fixtures" / "journal-0.1.0" / "rules-for-state.json"


async def test_a_0_1_0_for_state_file_restores_what_0_1_0_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0.1.0's for-state file loads as it wrote it and restores the activeAt 0.1.0 restored.

    tests/fixtures/journal-0.1.0/rules-for-state.json was written by 0.1.0 itself: the
    generate.py beside it, run in a worktree of commit 45f1ba4, evaluated ``LEAKS`` (as
    rules/leaks.yml, grace period 2m) with 0.1.0's engine from T0 to T0+9m, pod a above
    the threshold from T0 and pod b from T0+5m, then restarted 0.1.0's engine on the file
    at T0+12m and printed what it restored at its second evaluation: the values here.
    """
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "leaks.yml").write_text(LEAKS)
    (tmp_path / "state").mkdir()
    shutil.copy(FOR_STATE_0_1_0, tmp_path / "state" / FILE_NAME)

    async def send(alerts: list[Alert]) -> None:
        return None

    cfg = RulesConfig.validate({"evaluation_interval": "1m", "for_grace_period": "2m"})
    store = Store(retention_ms=3_600_000, max_series=100)
    engine = RuleEngine(runtime_groups(load_rules(["rules/leaks.yml"]), cfg), store, cfg,
                        registry=CollectorRegistry(), send=send,
                        state_dir=tmp_path / "state")  # fmt: skip
    labels = {"action": "cache_flush", "alertname": "CacheGrowing", "severity": "page"}
    assert engine.for_state.groups == {
        "rules/leaks.yml;leaks": {
            ("CacheGrowing", ls(**labels, pod="a")): ForEntry(T0 // 1000, T0 + 9 * MIN),
            ("CacheGrowing", ls(**labels, pod="b")): ForEntry(T0 // 1000 + 300, T0 + 9 * MIN),
        }
    }
    (group,) = engine.groups
    for step in (12, 13):
        store.ingest(T0 + step * MIN, {ls(__name__="cache_keys", pod=p): 20 for p in "ab"})
        await engine.iterate(group, T0 + step * MIN)
    engine.restore(group, T0 + 13 * MIN)
    (rule,) = group.alerting()
    restored = {dict(a.labels)["pod"]: a.active_at for a in rule.active.values()}
    # a needed 1m more: it gets the grace period; b is moved on by the 4m it was down.
    assert restored == {"a": T0 + 5 * MIN, "b": T0 + 9 * MIN}
