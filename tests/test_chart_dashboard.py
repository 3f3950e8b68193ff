"""The charts' Grafana dashboard queries metrics a real sidecar serves.

A whole sidecar runs in process against the demo app (the chart's scrape maps); its
``GET /metrics`` is read over HTTP, and every panel's and variable's PromQL, parsed with
the real PromQL parser, must find each metric it selects there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
from actions_support import alert, demo_app, until, webhook
from conftest import running
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from sidecar.cli.target_check import missing_inputs
from sidecar.core.config import Config
from sidecar.supervisor import Sidecar

ROOT = Path(__file__).parent.parent
DASHBOARD = ROOT / "charts" / "leak-sidecar" / "files" / "dashboard.json"
# Grafana's variables, as Grafana substitutes them before the query leaves.
VARIABLES = {"$__rate_interval": "1m", "$namespace": ".*", "$pod": ".*"}


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and query variables."""
    out = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            # label_values(EXPR, label) queries the series EXPR selects.
            inner = var["query"]["query"].removeprefix("label_values(").rpartition(",")[0]
            out.append(inner)
    return out


def substituted(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


async def test_every_dashboard_query_finds_its_metrics(tmp_path: Path) -> None:
    """Each metric a panel or variable selects is in a live sidecar's /metrics."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = queries(dashboard)
    assert len(exprs) == 16
    async with demo_app() as (_, base_url):
        cfg = Config.validate(
            {
                "app": {"base_url": base_url, "memory_limit_bytes": 2**28},
                "scrape": {
                    "maps": [
                        {"path": "caches", "labels": ["cache"]},
                        {"path": "http_requests", "labels": ["route", "code"]},
                    ],
                },
                "rules": {"files": [str(ROOT / "rules" / "*.yml")]},
                "server": {"listen": "127.0.0.1:0"},
                "state_dir": str(tmp_path),
            }
        )
        registry = CollectorRegistry()
        async with running(Sidecar(cfg, registry=registry)) as sidecar:
            await until(lambda: registry.get_sample_value("leak_sidecar_target_up") == 1.0)
            url = f"http://127.0.0.1:{sidecar.port}"
            async with aiohttp.ClientSession() as session:
                # One action and one notification: labelled counters have no series before.
                body = webhook(alert(action="cache_flush"))
                async with session.post(f"{url}/alerts", json=body) as resp:
                    assert resp.status == 200
                await until(
                    lambda: (
                        registry.get_sample_value(
                            "leak_sidecar_actions_total",
                            {"action": "cache_flush", "outcome": "success"},
                        )
                        == 1.0
                    )
                )
                async with session.get(f"{url}/metrics") as resp:
                    assert resp.status == 200
                    text = await resp.text()
    present = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert {e: missing_inputs(substituted(e), present) for e in exprs} == {e: [] for e in exprs}


def test_missing_metrics_are_reported() -> None:
    """The check names a metric the sidecar does not serve (so the test above can fail)."""
    expr = substituted('sum(rate(leak_sidecar_actoins_total{pod=~"$pod"}[$__rate_interval]))')
    assert missing_inputs(expr, {"leak_sidecar_actions_total"}) == ["leak_sidecar_actoins_total"]


def test_panels_use_the_datasource_variable_and_unique_ids() -> None:
    """Every panel and target queries the ${datasource} variable; ids and grid slots are unique."""
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    slots = {(p["gridPos"]["x"], p["gridPos"]["y"]) for p in panels}
    assert len(slots) == len(panels)
    for p in panels:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert all(t["datasource"] == p["datasource"] for t in p["targets"])
    assert dashboard["uid"] == "leak-sidecar"
