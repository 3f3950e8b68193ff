"""GET /v1/rules and /v1/alerts: Prometheus's /api/v1/rules and /api/v1/alerts shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from sidecar.core.config import RulesConfig
from sidecar.core.model import Alert, LabelSet
from sidecar.rules.engine import RuleEngine
from sidecar.rules.files import load_rules
from sidecar.rules.groups import runtime_groups
from sidecar.store import Store
from sidecar.web.rules_api import routes

T0 = 1_700_000_040_000
RULES = """\
groups:
  - name: leaks
    interval: 30s
    rules:
      - record: pool:ratio
        expr: pool_active / pool_max
      - alert: PoolFull
        expr: pool:ratio > 0.9
        for: 1m
        keep_firing_for: 2m
        labels: {action: circuit_break}
        annotations: {summary: "{{ $value | humanizePercentage }} full"}
      - alert: Broken
        expr: '{__name__=~"pool_active|pool_max"}'
"""


@asynccontextmanager
async def _serving_rules(
    path: Path, samples: dict[LabelSet, float]
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The rules API over the groups in ``path``, evaluated once at T0 on ``samples``."""
    store = Store(retention_ms=3_600_000, max_series=100)
    store.ingest(T0, samples)

    async def send(alerts: list[Alert]) -> None:
        return None

    engine = RuleEngine(
        runtime_groups(load_rules([str(path)]), RulesConfig()),
        store,
        RulesConfig(),
        registry=CollectorRegistry(),
        send=send,
        state_dir=None,
        clock=lambda: T0 / 1000,
        monotonic=lambda: 0.0,
    )
    await engine.iterate(engine.groups[0], T0)
    app = web.Application()
    app.router.add_routes(routes(engine.groups))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as c:
        yield c


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    path = tmp_path / "rules.yml"
    path.write_text(RULES, encoding="utf-8")
    samples: dict[LabelSet, float] = {
        (("__name__", "pool_active"),): 19.0,
        (("__name__", "pool_max"),): 20.0,
    }
    async with _serving_rules(path, samples) as c:
        yield c


async def test_rules_shape(
    client: TestClient[web.Request, web.Application], tmp_path: Path
) -> None:
    """Groups, rules and alerts carry Prometheus's field names, units and formats."""
    resp = await client.get("/v1/rules")
    assert resp.status == 200
    body = await resp.json()
    (group,) = body["data"]["groups"]
    assert body["status"] == "success"
    record, alert, broken = group.pop("rules")
    assert group == {
        "name": "leaks",
        "file": str(tmp_path / "rules.yml"),
        "interval": 30.0,
        "limit": 0,
        "evaluationTime": 0.0,
        "lastEvaluation": "2023-11-14T22:14:00Z",
    }
    assert record == {
        "name": "pool:ratio",
        "query": "pool_active / pool_max",
        "health": "ok",
        "evaluationTime": 0.0,
        "lastEvaluation": "2023-11-14T22:14:00Z",
        "type": "recording",
    }
    assert alert == {
        "state": "pending",
        "name": "PoolFull",
        "query": "pool:ratio > 0.9",
        "duration": 60.0,
        "keepFiringFor": 120.0,
        "labels": {"action": "circuit_break"},
        "annotations": {"summary": "{{ $value | humanizePercentage }} full"},
        "alerts": [
            {
                "labels": {"action": "circuit_break", "alertname": "PoolFull"},
                "annotations": {"summary": "95% full"},
                "state": "pending",
                "activeAt": "2023-11-14T22:14:00Z",
                "value": "9.5e-01",
            }
        ],
        "health": "ok",
        "evaluationTime": 0.0,
        "lastEvaluation": "2023-11-14T22:14:00Z",
        "type": "alerting",
    }
    assert (broken["health"], broken["lastError"], broken["alerts"]) == (
        "err",
        "vector contains metrics with the same labelset after applying alert labels",
        [],
    )


async def test_rules_type_filter(client: TestClient[web.Request, web.Application]) -> None:
    """?type=record / ?type=alert keep one kind; any other value is a 400."""
    rec = await (await client.get("/v1/rules?type=record")).json()
    assert [r["name"] for r in rec["data"]["groups"][0]["rules"]] == ["pool:ratio"]
    alerts = await (await client.get("/v1/rules?type=ALERT")).json()
    assert [r["name"] for r in alerts["data"]["groups"][0]["rules"]] == ["PoolFull", "Broken"]
    bad = await client.get("/v1/rules?type=both")
    assert bad.status == 400
    assert await bad.json() == {
        "status": "error",
        "errorType": "bad_data",
        "error": 'invalid parameter "type": not supported value "both"',
    }


async def test_alerts_list(client: TestClient[web.Request, web.Application]) -> None:
    """/v1/alerts lists every pending and firing alert of every rule."""
    resp = await client.get("/v1/alerts")
    assert await resp.json() == {
        "status": "success",
        "data": {
            "alerts": [
                {
                    "labels": {"action": "circuit_break", "alertname": "PoolFull"},
                    "annotations": {"summary": "95% full"},
                    "state": "pending",
                    "activeAt": "2023-11-14T22:14:00Z",
                    "value": "9.5e-01",
                }
            ]
        },
    }


async def test_a_rule_the_evaluator_cannot_run_shows_its_reason(tmp_path: Path) -> None:
    """Valid PromQL the evaluator refuses loads with its file and reports health err."""
    path = tmp_path / "rules.yml"
    path.write_text(
        "groups:\n  - name: g\n    rules:\n"
        "      - record: refused\n        expr: limitk(1, pool_active)\n"
        "      - record: fine\n        expr: pool_active\n",
        encoding="utf-8",
    )
    async with _serving_rules(path, {(("__name__", "pool_active"),): 19.0}) as c:
        body = await (await c.get("/v1/rules")).json()
    refused, fine = body["data"]["groups"][0]["rules"]
    assert (refused["health"], refused["lastError"]) == (
        "err",
        "cannot evaluate 'limitk(1, pool_active)': not supported: aggregation limitk "
        "(not a Prometheus 2.42 aggregation)",
    )
    assert fine["health"] == "ok"
