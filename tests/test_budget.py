"""The fleet budget (sidecar.actions.fleet): its query, its verdicts, and the dispatcher asking it.

Prometheus is a small aiohttp server on loopback that answers ``/api/v1/query`` with the
census a test sets, and records every query it was asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from actions_support import (
    Clock,
    Disk,
    Rig,
    alert,
    config,
    journal_entries,
    rig,
    until,
    webhook,
)
from aiohttp import web
from conftest import serving
from prometheus_client import CollectorRegistry

from sidecar.actions.fleet import Budget, census_query
from sidecar.actions.path import build_router
from sidecar.core.config_fleet import FleetConfig
from sidecar.core.config_load import load
from sidecar.core.errors import ConfigError
from sidecar.core.model import fingerprint

ME = "0123456789abcdef"


@dataclass
class _Prometheus:
    """Answers each instant query with ``answer``; ``status`` other than 200 is an error."""

    answer: Any = None
    status: int = 200
    queries: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.queries.append(request.query["query"])
        if self.status != 200:
            return web.Response(status=self.status, text="query engine overloaded")
        return web.json_response(self.answer)

    def census(
        self,
        total: int,
        sick: int,
        opened: tuple[str, ...] = (),
        claims: tuple[tuple[float, str, str], ...] = (),
    ) -> None:
        def sample(q: str, value: float, **labels: str) -> dict[str, Any]:
            return {"metric": {"leak_sidecar_q": q, **labels}, "value": [0, str(value)]}

        result = [sample("total", total), sample("sick", sick)]
        result += [sample("open", 1, instance=i) for i in opened]
        result += [sample("claim", t, sidecar_id=s, instance=i) for t, s, i in claims]
        self.answer = {"status": "success", "data": {"resultType": "vector", "result": result}}


@asynccontextmanager
async def _prometheus() -> AsyncIterator[tuple[_Prometheus, str]]:
    fake = _Prometheus()
    app = web.Application()
    app.router.add_get("/api/v1/query", fake.handle)
    async with serving(app) as url:
        yield fake, url


def _cfg(url: str, **extra: Any) -> FleetConfig:
    return FleetConfig.validate(
        {"prometheus_url": url, "workload": {"app": "orders"}, "settle": "10s", **extra}
    )


def test_census_query_is_one_query_with_quoted_workload_labels() -> None:
    """The one instant query, pinned: label values are PromQL strings, a quote cannot end one."""
    sel = '{app="orders",namespace="sh\\"op"}'
    assert census_query({"namespace": 'sh"op', "app": "orders"}) == (
        f'label_replace(count(up{sel}), "leak_sidecar_q", "total", "", "") or '
        f"label_replace(count(max by (instance) (leak_sidecar_fleet_break_wanted{sel} > 0 or "
        f'leak_sidecar_circuit_desired_state{sel} == 1)), "leak_sidecar_q", "sick", "", "") or '
        f'label_replace(leak_sidecar_circuit_desired_state{sel} == 1, "leak_sidecar_q", "open", '
        '"", "") or '
        f'label_replace(leak_sidecar_fleet_break_wanted{sel} > 0, "leak_sidecar_q", "claim", '
        '"", "")'
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (
            {"prometheus_url": "http://prom:9090"},
            "fleet.workload: required with fleet.prometheus_url (http://prom:9090), got none: "
            "every sidecar Prometheus scrapes would share one budget",
        ),
        (
            {"max_open_fraction": 0.6},
            "fleet.max_open_fraction: must not exceed fleet.panic_fraction (0.5), got 0.6",
        ),
        (
            {"forward": {"allow": ["10.0.0.1/8"]}},
            "fleet.forward.allow: expected a network such as 10.0.0.0/8 (no host bits set), "
            "got '10.0.0.1/8': 10.0.0.1/8 has host bits set",
        ),
        (
            {"forward": {"label": "__address__"}},
            "fleet.forward.label: invalid label name '__address__': "
            "expected [a-zA-Z_][a-zA-Z0-9_]* not starting with __",
        ),
        (
            {"workload": {"bad-name": "x"}},
            "fleet.workload: invalid label name 'bad-name': "
            "expected [a-zA-Z_][a-zA-Z0-9_]* not starting with __",
        ),
        (
            {"forward": {"port": 0}},
            "fleet.forward.port: expected int >= 1, got 0",
        ),
    ],
)
def test_fleet_config_refuses_what_cannot_work(raw: dict[str, Any], problem: str) -> None:
    """Each impossible fleet setting is refused with one line naming the key, what was
    expected and what came, as check-config prints it."""
    with pytest.raises(ConfigError) as info:
        load(None, {"LEAK_SIDECAR_TOKEN": "t"}, overrides={"fleet": raw})
    assert info.value.problems == [problem]


async def test_budget_waits_to_settle_then_grants_the_oldest_want() -> None:
    """The first ask only publishes the want (no query); after the settle time the oldest
    want gets the one slot of ten, a younger one is queued, an open pod spends it."""
    registry, clock = CollectorRegistry(), Clock()
    async with _prometheus() as (prom, url), aiohttp.ClientSession() as session:
        budget = Budget(_cfg(url), session, registry, clock=clock, sidecar_id=ME)
        first = await budget.decide()
        wanted = registry.get_sample_value("leak_sidecar_fleet_break_wanted", {"sidecar_id": ME})
        clock.advance(10)
        prom.census(10, 2, claims=((clock.now - 10, ME, "a:9120"), (clock.now - 5, "b", "b:9120")))
        oldest = await budget.decide()
        prom.census(10, 2, claims=((clock.now - 20, "b", "b:9120"), (clock.now - 10, ME, "a:9120")))
        queued = await budget.decide()
        prom.census(10, 2, opened=("c:9120",), claims=((clock.now - 10, ME, "a:9120"),))
        spent = await budget.decide()
        budget.release()
        released = registry.get_sample_value("leak_sidecar_fleet_break_wanted", {"sidecar_id": ME})

    assert (first.allowed, first.outcome, first.why) == (
        False,
        "waiting",
        "waiting 10s for the fleet to see this want",
    )
    assert wanted == clock.now - 10
    assert (oldest.allowed, oldest.why) == (True, "within budget: 0 of 10 open, 1 allowed")
    assert (queued.allowed, queued.why) == (
        False,
        "queued: 1 older want(s) before this one, 0 of 10 open, 1 allowed",
    )
    assert (spent.allowed, spent.why) == (False, "budget spent: 1 of 10 open, 1 allowed")
    assert len(prom.queries) == 3
    assert released == 0.0
    decisions = "leak_sidecar_fleet_budget_decisions_total"
    assert [
        registry.get_sample_value(decisions, {"outcome": o}) for o in ("waiting", "allowed")
    ] == [
        1.0,
        1.0,
    ]
    assert registry.get_sample_value(decisions, {"outcome": "refused"}) == 2.0


async def test_panic_past_half_the_workload_sick_suspends_and_says_so() -> None:
    """Six of ten sick: refused as panic, the gauge is 1 and the status line says PANIC;
    back to four of ten, the panic is over."""
    registry, clock = CollectorRegistry(), Clock()
    async with _prometheus() as (prom, url), aiohttp.ClientSession() as session:
        budget = Budget(_cfg(url), session, registry, clock=clock, sidecar_id=ME)
        await budget.decide()
        clock.advance(10)
        prom.census(10, 6, claims=((clock.now - 10, ME, "a:9120"),))
        panic = await budget.decide()
        gauge = registry.get_sample_value("leak_sidecar_fleet_panic")
        line = budget.status()
        prom.census(10, 4, claims=((clock.now - 10, ME, "a:9120"),))
        over = await budget.decide()

    assert (panic.allowed, panic.outcome) == (False, "panic")
    assert gauge == 1.0
    assert line == (
        "PANIC, automatic breaks suspended: panic: 6 of 10 sidecars of the workload look "
        "sick (more than 0.5); automatic breaks suspended"
    )
    assert (over.allowed, over.outcome) == (True, "allowed")
    assert registry.get_sample_value("leak_sidecar_fleet_panic") == 0.0


@pytest.mark.parametrize(
    ("fallback", "allowed", "outcome"),
    [("allow", True, "fallback_allowed"), ("refuse", False, "fallback_refused")],
)
async def test_a_failed_query_applies_the_fallback_and_is_counted(
    fallback: str, allowed: bool, outcome: str
) -> None:
    """Prometheus answering 503, then garbage, then NaN: the configured fallback decides,
    each counted."""
    registry, clock = CollectorRegistry(), Clock()
    async with _prometheus() as (prom, url), aiohttp.ClientSession() as session:
        cfg = _cfg(url, on_query_failure=fallback)
        budget = Budget(cfg, session, registry, clock=clock, sidecar_id=ME)
        await budget.decide()
        clock.advance(10)
        prom.status = 503
        down = await budget.decide()
        prom.status, prom.answer = 200, {"status": "success", "data": {"resultType": "matrix"}}
        garbage = await budget.decide()
        prom.census(10, 0)
        prom.answer["data"]["result"][0]["value"] = [0, "NaN"]
        nan = await budget.decide()

    assert (down.allowed, down.outcome) == (allowed, outcome)
    assert down.why == (
        "Prometheus query failed (Prometheus answered 503: query engine overloaded); "
        f"fleet.on_query_failure: {fallback}"
    )
    assert (garbage.allowed, garbage.outcome) == (allowed, outcome)
    assert garbage.why == (
        "Prometheus query failed (expected Prometheus's query answer: Object missing "
        f"required field `result` - at `$.data`); fleet.on_query_failure: {fallback}"
    )
    assert (nan.allowed, nan.outcome) == (allowed, outcome)
    assert nan.why == (
        "Prometheus query failed (expected a finite number, got 'NaN'); "
        f"fleet.on_query_failure: {fallback}"
    )
    assert registry.get_sample_value("leak_sidecar_fleet_budget_query_failures_total") == 3.0
    decisions = "leak_sidecar_fleet_budget_decisions_total"
    assert registry.get_sample_value(decisions, {"outcome": outcome}) == 3.0


async def test_a_refused_break_is_examined_again_and_proceeds_when_budget_frees(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """The dispatcher holds a refused break (no call, not deduplicated) and breaks once the
    budget frees; a flush and a manual break never ask Prometheus."""
    async with _prometheus() as (prom, url):
        fleet = {"prometheus_url": url, "workload": {"app": "orders"}, "settle": "1s"}
        async with rig(tmp_path, registry, fleet=fleet) as r:
            budget = r.path.dispatcher.budget
            assert budget is not None
            flush = webhook(alert("CacheFull", action="cache_flush"))
            status, body = await r.post("/alerts", flush)
            assert (status, [a["action"] for a in body["actions"]]) == (200, ["cache_flush"])
            assert prom.queries == []

            status, body = await r.post("/alerts", webhook(alert(action="circuit_break")))
            assert (status, body["actions"], body["duplicates"]) == (200, [], 0)
            r.clock.advance(1)
            prom.census(10, 2, opened=("x:9120",), claims=((r.clock.now, budget.id, "me"),))
            await r.path.dispatcher.reexamine()
            refused = r.calls("/v1/circuit/break")
            # The same notification again (Alertmanager's repeat): examined, not a duplicate.
            status, body = await r.post("/alerts", webhook(alert(action="circuit_break")))
            assert (status, body["duplicates"]) == (200, 0)

            prom.census(10, 1, claims=((r.clock.now, budget.id, "me"),))
            await r.path.dispatcher.reexamine()
            await r.settle()
            broke = r.calls("/v1/circuit/break")
            asked = len(prom.queries)

            await r.post("/v1/circuit/reset", {"reason": "test"})
            status, _ = await r.post("/v1/circuit/break", {"reason": "by hand"})
            await r.settle()

    assert refused == []
    assert [c.body["reason"] for c in broke] == ["alert CacheGrowing firing"]
    assert asked == 3
    assert status == 202
    assert len(prom.queries) == asked
    assert [c.body["source"] for c in r.calls("/v1/circuit/break")] == ["alertmanager", "operator"]


async def test_a_grant_stays_published_while_its_opening_waits_behind_another_commit(
    tmp_path: Path, registry: CollectorRegistry, disk: Disk
) -> None:
    """A decision made durable ahead of a granted opening still queued for the next group
    commit does not withdraw the want the opening was granted on: with the circuit open,
    leak_sidecar_fleet_break_wanted still says since when."""
    async with _prometheus() as (prom, url), rig(tmp_path, registry, fleet=_fleet(url)) as r:
        budget = r.path.dispatcher.budget
        assert budget is not None
        status, body = await r.post("/alerts", webhook(alert(action="circuit_break")))
        assert (status, body["actions"]) == (200, [])  # waiting for the fleet to see it
        since = budget.wanted_since
        assert since is not None
        r.clock.advance(1)
        prom.census(10, 1, claims=((since, budget.id, "me"),))
        disk.hold_call = disk.calls + 1
        flush = webhook(alert("CacheFull", action="cache_flush"))
        flushed = asyncio.create_task(r.post("/alerts", flush))
        await asyncio.to_thread(disk.entered.wait, 10)
        opened = asyncio.create_task(r.path.dispatcher.reexamine())
        await until(lambda: r.path.journal.queued == 1)
        disk.release.set()
        await asyncio.gather(flushed, opened)
        await r.settle()
        wanted = r.metric("leak_sidecar_fleet_break_wanted", sidecar_id=budget.id)
        circuit = r.path.breaker.state.state

    assert (circuit, wanted) == ("open", since)
    assert [c.body["reason"] for c in r.calls("/v1/circuit/break")] == ["alert CacheGrowing firing"]


def _fleet(url: str) -> dict[str, Any]:
    return {"prometheus_url": url, "workload": {"app": "orders"}, "settle": "1s"}


def _budget(r: Rig) -> Budget:
    budget = r.path.dispatcher.budget
    assert budget is not None
    return budget


async def _grant(r: Rig, prom: _Prometheus) -> None:
    """Examine the refused breaks with a free budget: publish the want, settle, ask."""
    budget = _budget(r)
    await r.path.dispatcher.reexamine()  # a new want: published, waiting to settle
    r.clock.advance(1)
    assert budget.wanted_since is not None
    prom.census(10, 1, claims=((budget.wanted_since, budget.id, "me"),))
    await r.path.dispatcher.reexamine()
    await r.settle()


def _refused_lines(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The journal's lines that change the refused breaks: (type, refused)."""
    return [(e["type"], e["refused"]) for e in journal_entries(path) if e.get("refused")]


BREAK = alert(action="circuit_break")
INSTANCE = f"{fingerprint(BREAK['labels'])}@1699999200000"
"""The alert instance: fingerprint @ startsAt (2023-11-14T22:00:00Z) in ms."""


async def test_a_refused_break_survives_a_restart_and_breaks_once_budget_frees(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """A break refused before a restart is journaled, examined again by the restarted
    sidecar without a new notification, and breaks once the budget frees."""
    async with _prometheus() as (prom, url):
        async with rig(tmp_path, registry, fleet=_fleet(url)) as r:
            status, body = await r.post("/alerts", webhook(BREAK))
            assert (status, body["actions"]) == (200, [])
            path = r.path.journal.path
            r.clock.advance(1)
            prom.census(10, 2, opened=("x:9120",))
            await r.path.dispatcher.reexamine()  # budget spent: still refused, not journaled
            refused = _refused_lines(path)
        async with rig(tmp_path, CollectorRegistry(), fleet=_fleet(url)) as r:
            assert list(r.path.dispatcher.memory.refused) == [INSTANCE]
            await _grant(r, prom)
            broke = r.calls("/v1/circuit/break")
            state = r.path.breaker.state.state
            after = _refused_lines(path)
        # Broken, it is gone from the journal: a third start examines nothing.
        asked = len(prom.queries)
        async with rig(tmp_path, CollectorRegistry(), fleet=_fleet(url)) as r:
            assert r.path.dispatcher.memory.refused == {}
            await r.path.dispatcher.reexamine()
            assert r.path.breaker.state.state == "open"

    record = {
        "alert": {
            "status": "firing",
            "labels": {"alertname": "CacheGrowing", "action": "circuit_break"},
            "annotations": {"summary": "CacheGrowing is firing"},
            "fingerprint": fingerprint(BREAK["labels"]),
            "startsAt": "2023-11-14T22:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
        },
        "source": "alertmanager",
        "cooldown": 0.0,
        "cooldown_key": "circuit_break",
        "matched": "label",
    }
    assert refused == [("decision", {INSTANCE: record})]
    assert [(c.body["reason"], c.body["source"]) for c in broke] == [
        ("alert CacheGrowing firing", "alertmanager")
    ]
    assert state == "open"
    # The restart's compaction carried it; the break removed it.
    assert after == [("snapshot", {INSTANCE: record}), ("decision", {INSTANCE: None})]
    assert len(prom.queries) == asked


def _routed(action: str) -> dict[str, Any]:
    """The rig's actions section, with CacheGrowing routed to ``action`` by config."""
    return {
        "timeout": "1s",
        "retry": {"attempts": 3, "initial_backoff": "100ms", "max_backoff": "1s"},
        "routes": [{"match": {"alertname": "CacheGrowing"}, "action": action}],
    }


async def test_a_refused_break_a_restart_mutes_is_dropped_not_broken(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """A break refused before a restart whose config now routes its alert to none is
    dropped at its next examination (journaled): the budget is never asked, the app never
    called, and nothing waits for the fleet any more."""
    async with _prometheus() as (prom, url):
        async with rig(tmp_path, registry, fleet=_fleet(url)) as r:
            status, body = await r.post("/alerts", webhook(BREAK))
            assert (status, body["actions"]) == (200, [])
            path = r.path.journal.path
        asked = len(prom.queries)
        async with rig(
            tmp_path, CollectorRegistry(), fleet=_fleet(url), actions=_routed("none")
        ) as r:
            restored = list(r.path.dispatcher.memory.refused)
            r.clock.advance(1)
            await r.path.dispatcher.reexamine()
            await r.settle()
            refused = dict(r.path.dispatcher.memory.refused)
            wanted = r.metric("leak_sidecar_fleet_break_wanted", sidecar_id=_budget(r).id)
            lines = _refused_lines(path)

    assert restored == [INSTANCE]
    assert refused == {}
    assert lines[-1] == ("decision", {INSTANCE: None})
    assert len(prom.queries) == asked
    assert r.calls() == []
    assert wanted == 0.0


async def test_a_reload_that_routes_a_refused_break_to_a_flush_flushes_once(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """A reload that sends a refused break's alert to cache_flush: the next examination
    flushes the cache for it and drops the refused break; the circuit is never broken,
    and examining again calls nothing more."""
    async with _prometheus() as (prom, url), rig(tmp_path, registry, fleet=_fleet(url)) as r:
        status, body = await r.post("/alerts", webhook(BREAK))
        assert (status, body["actions"]) == (200, [])  # waiting for the fleet to see it
        since = _budget(r).wanted_since
        assert since is not None
        cfg = config(
            tmp_path / "state",
            r.path.cfg.app.base_url,
            fleet=_fleet(url),
            actions=_routed("cache_flush"),
        )
        r.path.reconfigure(cfg, build_router(cfg))
        r.clock.advance(1)
        # The fleet grants this pod's want: under the old route, this examination breaks.
        prom.census(10, 1, claims=((since, _budget(r).id, "me"),))
        await r.path.dispatcher.reexamine()
        await r.settle()
        await r.path.dispatcher.reexamine()
        await r.settle()
        refused = dict(r.path.dispatcher.memory.refused)
        circuit = r.path.breaker.state.state

    assert [c.body["reason"] for c in r.calls("/v1/cache/flush")] == ["alert CacheGrowing firing"]
    assert r.calls("/v1/circuit/break") == []
    assert (refused, circuit) == ({}, "closed")


async def test_a_resolved_refused_break_does_not_come_back_after_a_restart(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """A refused break whose alert resolved is journaled as gone: the restarted sidecar
    examines nothing, asks Prometheus nothing and calls nothing."""
    async with _prometheus() as (prom, url):
        async with rig(tmp_path, registry, fleet=_fleet(url)) as r:
            await r.post("/alerts", webhook(BREAK))
            resolved = alert(status="resolved", action="circuit_break")
            status, body = await r.post("/alerts", webhook(resolved))
            assert (status, body["actions"]) == (200, [])
            lines = _refused_lines(r.path.journal.path)
        async with rig(tmp_path, CollectorRegistry(), fleet=_fleet(url)) as r:
            refused = dict(r.path.dispatcher.memory.refused)
            r.clock.advance(1)
            await r.path.dispatcher.reexamine()
            await r.settle()
            wanted = r.metric("leak_sidecar_fleet_break_wanted", sidecar_id=_budget(r).id)

    assert [(kind, list(c.values())) for kind, c in lines] == [
        ("decision", [lines[0][1][INSTANCE]]),
        ("decision", [None]),
    ]
    assert refused == {}
    assert prom.queries == []
    assert r.calls() == []
    assert wanted == 0.0


async def test_compaction_keeps_the_refused_breaks_in_order(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Past actions.journal_max_entries the journal is rewritten to one snapshot that
    carries every refused break, first refused first; a restart restores them from it."""
    alerts = [alert(f"Leak{i}", action="circuit_break") for i in range(3)]
    async with _prometheus() as (_, url):
        actions = {"journal_max_entries": 3}
        async with rig(tmp_path, registry, fleet=_fleet(url), actions=actions) as r:
            for a in alerts:
                await r.post("/alerts", webhook(a))
            before = list(r.path.dispatcher.memory.refused)
            entries = journal_entries(r.path.journal.path)
        async with rig(tmp_path, CollectorRegistry(), fleet=_fleet(url)) as r:
            restored = dict(r.path.dispatcher.memory.refused)

    keys = [f"{fingerprint(a['labels'])}@1699999200000" for a in alerts]
    assert before == keys
    # The start's snapshot, two decisions, compacted at the third: one snapshot, one line.
    assert [e["type"] for e in entries] == ["snapshot"]
    assert list(entries[0]["refused"]) == keys
    assert [r.alert.labels["alertname"] for r in restored.values()] == ["Leak0", "Leak1", "Leak2"]
    assert list(restored) == keys
    assert {(r.source, r.route.action, r.route.cooldown_key) for r in restored.values()} == {
        ("alertmanager", "circuit_break", "circuit_break")
    }


async def test_a_failed_commit_leaves_no_refused_break_behind(
    tmp_path: Path, registry: CollectorRegistry, disk: Disk
) -> None:
    """A refusal queued behind a commit that fails is taken back with it: answered 503,
    not in memory, not in the journal, the want withdrawn; Alertmanager's retry is
    refused and remembered as if it came first."""
    async with _prometheus() as (_, url), rig(tmp_path, registry, fleet=_fleet(url)) as r:
        disk.hold_call = disk.fail_call = disk.calls + 1
        flush = asyncio.create_task(r.post("/alerts", webhook(alert("F", action="cache_flush"))))
        await asyncio.to_thread(disk.entered.wait, 10)
        refusal = asyncio.create_task(r.post("/alerts", webhook(BREAK)))
        await until(lambda: r.path.journal.queued == 1)
        disk.release.set()
        answers = [(await t)[0] for t in (flush, refusal)]
        refused = dict(r.path.dispatcher.memory.refused)
        lines = _refused_lines(r.path.journal.path)
        wanted = r.metric("leak_sidecar_fleet_break_wanted", sidecar_id=_budget(r).id)

        status, _ = await r.post("/alerts", webhook(BREAK))
        retried = list(r.path.dispatcher.memory.refused)
        after = _refused_lines(r.path.journal.path)

    assert answers == [503, 503]
    assert (refused, lines, wanted) == ({}, [], 0.0)
    assert (status, retried) == (200, [INSTANCE])
    assert [(kind, list(c)) for kind, c in after] == [("decision", [INSTANCE])]


async def test_refused_breaks_past_the_bound_are_dropped_oldest_first_in_the_journal_too(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """With actions.dedupe_max 2, a third refused break drops the first, in the same
    journal line: the restarted sidecar remembers the last two, with a bound of 1 the last."""
    alerts = [alert(f"Leak{i}", action="circuit_break") for i in range(3)]
    keys = [f"{fingerprint(a['labels'])}@1699999200000" for a in alerts]
    async with _prometheus() as (_, url):
        async with rig(tmp_path, registry, fleet=_fleet(url), actions={"dedupe_max": 2}) as r:
            for a in alerts:
                await r.post("/alerts", webhook(a))
            lines = _refused_lines(r.path.journal.path)
        async with rig(tmp_path, CollectorRegistry(), fleet=_fleet(url)) as r:
            restored = list(r.path.dispatcher.memory.refused)
        # A lower bound at the next start keeps the newest, and the start's compaction too.
        async with rig(
            tmp_path, CollectorRegistry(), fleet=_fleet(url), actions={"dedupe_max": 1}
        ) as r:
            lowered = list(r.path.dispatcher.memory.refused)
            snapshot = journal_entries(r.path.journal.path)

    assert [(kind, {k: v is not None for k, v in c.items()}) for kind, c in lines] == [
        ("decision", {keys[0]: True}),
        ("decision", {keys[1]: True}),
        ("decision", {keys[0]: False, keys[2]: True}),
    ]
    assert restored == keys[1:]
    assert lowered == keys[2:]
    assert [(e["type"], list(e["refused"])) for e in snapshot] == [("snapshot", keys[2:])]
