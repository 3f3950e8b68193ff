"""``metric_relabel_configs`` against Prometheus itself: the same configs, the same series.

One fixed exposition is served on loopback; a real ``prometheus`` scrapes it once per
case (one job each, with that case's ``metric_relabel_configs`` and a ``case`` target
label that no case touches), and its API gives the series it stored. The sidecar's
relabelling of the same samples, with the same target labels Prometheus attaches before
metric relabelling (``job``, ``instance``, ``case``), must give the same label sets and
values. Every action is covered; invalid configs must fail ``promtool check config``
with the message the sidecar gives.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from fleet_support import WAIT, get_json
from msgspec import ValidationError
from procs import binary, prometheus
from prometheus_client.parser import text_string_to_metric_families

from sidecar.core.config_relabel import ACTIONS, RelabelConfig
from sidecar.core.model import LabelSet, labelset
from sidecar.core.validation import Problem
from sidecar.scrape.relabel import Relabeller

pytestmark = pytest.mark.integration

EXPOSITION = """\
# TYPE myapp_sessions_len gauge
myapp_sessions_len 1200
# TYPE myapp_carts_len gauge
myapp_carts_len 37
# TYPE myapp_pool_in_use gauge
myapp_pool_in_use{pool="db"} 9
myapp_pool_in_use{pool="redis"} 3
# TYPE myapp_pool_size gauge
myapp_pool_size{pool="db"} 10
# TYPE http_requests_total counter
http_requests_total{method="GET",code="200",want="200"} 1027
http_requests_total{method="post",code="500",want="200"} 3
http_requests_total{method="Put",code="201",want="201"} 12
# TYPE go_goroutines gauge
go_goroutines 42
# TYPE build_info gauge
build_info{version="1.2.3",go_version="go1.22.1",region="eu-west-1"} 1
"""

_NAME = ["__name__"]
CASES: dict[str, list[dict[str, Any]]] = {
    "replace_map_onto_pack": [
        {"source_labels": _NAME, "regex": "myapp_(.+)_len", "target_label": "cache"},
        {
            "source_labels": _NAME,
            "regex": "myapp_.+_len",
            "target_label": "__name__",
            "replacement": "cache_keys_total",
        },
        {
            "source_labels": _NAME,
            "regex": "myapp_pool_in_use",
            "target_label": "__name__",
            "replacement": "conn_pool_active",
        },
        {
            "source_labels": _NAME,
            "regex": "go_(goroutines)",
            "target_label": "__name__",
            "replacement": "${1}",
        },
    ],
    "replace_named_groups_and_dollar_target": [
        {
            "source_labels": ["__name__", "pool"],
            "separator": "@",
            "regex": "(?P<app>[a-z]+)_pool_(?P<what>[a-z_]+)@(.*)",
            "target_label": "${what}_of",
            "replacement": "$app/$3/$$/${9}x",
        },
    ],
    "replace_empty_result_deletes_and_constant_label": [
        {"source_labels": ["method"], "regex": "GET", "target_label": "method", "replacement": ""},
        {"target_label": "team", "replacement": "payments"},
        {"source_labels": ["nope"], "regex": "", "target_label": "empty_src", "replacement": "y"},
    ],
    "replace_no_match_and_invalid_expanded_target": [
        {"source_labels": ["code"], "regex": "(5)..", "target_label": "class_${1}xx"},
        {
            "source_labels": ["code"],
            "regex": "(2)..",
            "target_label": "${1}bad",
            "replacement": "z",
        },
    ],
    "keep": [{"source_labels": _NAME, "regex": "myapp_.*|go_.+", "action": "Keep"}],
    "drop": [
        {
            "source_labels": ["method", "code"],
            "separator": ",",
            "regex": "(?i)post,5\\d\\d",
            "action": "drop",
        },
        {"source_labels": _NAME, "regex": "build_info", "action": "drop"},
    ],
    "keepequal": [
        {"source_labels": _NAME, "regex": "http_.*|build_info", "action": "keep"},
        {"source_labels": ["code"], "target_label": "want", "action": "keepequal"},
    ],
    "dropequal": [{"source_labels": ["code"], "target_label": "want", "action": "dropequal"}],
    "hashmod": [
        {
            "source_labels": ["__name__", "method", "pool"],
            "modulus": 7,
            "target_label": "shard",
            "action": "hashmod",
        },
        {"source_labels": ["region"], "modulus": 1000003, "target_label": "r", "action": "hashmod"},
    ],
    "labelmap": [
        {"regex": "(method|code)", "replacement": "http_$1", "action": "labelmap"},
        {"regex": "go_(.+)", "replacement": "runtime_${1}", "action": "labelmap"},
    ],
    "labeldrop": [{"regex": "code|want|go_.*", "action": "labeldrop"}],
    "labelkeep": [{"regex": "__name__|job|instance|case|method|pool", "action": "labelkeep"}],
    "lowercase": [{"source_labels": ["method"], "target_label": "method", "action": "lowercase"}],
    "uppercase": [
        {"source_labels": ["method", "region"], "target_label": "M", "action": "uppercase"}
    ],
}

INVALID: list[dict[str, Any]] = [
    {"action": "explode"},
    {"action": "hashmod", "target_label": "x"},
    {"action": "uppercase", "source_labels": ["a"]},
    {"target_label": "1abc"},
    {"target_label": "a-$1"},
    {"action": "lowercase", "target_label": "x", "replacement": "y"},
    {"action": "labelmap", "replacement": "1_$1"},
    {"action": "hashmod", "target_label": "a b", "modulus": 2},
    {"action": "keepequal", "target_label": "x", "separator": ","},
    {"action": "labeldrop", "regex": "a", "target_label": "x"},
    {"source_labels": ["a-b"], "target_label": "x"},
]


def test_every_action_is_covered() -> None:
    """The differential cases use every action Prometheus knows."""
    used = {cfg.get("action", "replace").lower() for cfgs in CASES.values() for cfg in cfgs}
    assert used == set(ACTIONS)


@asynccontextmanager
async def _exposition() -> AsyncIterator[str]:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=EXPOSITION, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def _prometheus_config(target: str) -> str:
    jobs = [
        {
            "job_name": case,
            "scrape_interval": "1s",
            "scrape_timeout": "500ms",
            "static_configs": [{"targets": [target], "labels": {"case": case}}],
            "metric_relabel_configs": cfgs,
        }
        for case, cfgs in CASES.items()
    ]
    return json.dumps({"global": {"scrape_interval": "1s"}, "scrape_configs": jobs}, indent=1)


def _exposed_samples() -> dict[LabelSet, float]:
    out: dict[LabelSet, float] = {}
    for family in text_string_to_metric_families(EXPOSITION):
        for s in family.samples:
            out[labelset({"__name__": s.name, **s.labels})] = s.value
    return out


def _sidecar_series(case: str, target: str) -> set[tuple[LabelSet, float]]:
    relabeller = Relabeller([RelabelConfig.validate(c) for c in CASES[case]])
    attached = {"job": case, "instance": target, "case": case}
    samples = {labelset({**dict(ls), **attached}): v for ls, v in _exposed_samples().items()}
    out = relabeller.apply(samples)
    assert out.conflicts == 0
    return set(out.samples.items())


async def _prometheus_series(
    http: aiohttp.ClientSession, url: str, case: str
) -> set[tuple[LabelSet, float]]:
    body = await get_json(http, f"{url}/api/v1/query", query=f'{{case="{case}"}}')
    return {
        (labelset(r["metric"]), float(r["value"][1]))
        for r in body["data"]["result"]
        if r["metric"].get("__name__") != "up"
        and not r["metric"].get("__name__", "").startswith("scrape_")
    }


async def _scraped_everywhere(http: aiohttp.ClientSession, url: str) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            body = await get_json(http, f"{url}/api/v1/query", query="up == 1")
            if {r["metric"]["case"] for r in body["data"]["result"]} >= set(CASES):
                # One more interval: ``up`` is written in the same append as the samples.
                await asyncio.sleep(1.5)
                return
            await asyncio.sleep(0.2)


async def test_same_series_as_prometheus(tmp_path: Path) -> None:
    """For every case, the series Prometheus stores are the series the sidecar keeps."""
    async with (
        _exposition() as target,
        prometheus(tmp_path / "prometheus", _prometheus_config(target)) as prom,
        aiohttp.ClientSession() as http,
    ):
        await _scraped_everywhere(http, prom.url)
        for case in CASES:
            theirs = await _prometheus_series(http, prom.url, case)
            ours = _sidecar_series(case, target)
            assert theirs, f"{case}: Prometheus kept no series"
            assert ours == theirs, (
                f"{case}: only the sidecar has {sorted(ours - theirs)}; "
                f"only Prometheus has {sorted(theirs - ours)}"
            )


@pytest.mark.parametrize("cfg", INVALID, ids=lambda c: json.dumps(c, sort_keys=True))
def test_invalid_config_fails_as_in_promtool(tmp_path: Path, cfg: dict[str, Any]) -> None:
    """A config Prometheus refuses is refused too, with the text promtool prints."""
    with pytest.raises(ValidationError) as caught:
        RelabelConfig.validate(cfg)
    ours = Problem.of(caught.value).message
    path = tmp_path / "prometheus.yml"
    job = {"job_name": "x", "static_configs": [{"targets": ["127.0.0.1:1"]}]}
    path.write_text(json.dumps({"scrape_configs": [{**job, "metric_relabel_configs": [cfg]}]}))
    done = subprocess.run(
        [binary("promtool"), "check", "config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert ours in done.stdout + done.stderr
