"""The whole sidecar, in process and as the real command, against the demo app on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import running
from procs import sidecar_command
from prometheus_client.parser import text_string_to_metric_families
from status_support import Node, parse_html

from sidecar.core.config import Config
from sidecar.demo.app import DEMO_APP, DemoApp, serve
from sidecar.supervisor import Sidecar

FROZEN = 5000.0  # the demo app's clock stands still: its numbers are exact


async def _eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check`` until it holds; the app and the sidecar run on their own clocks."""
    async with asyncio.timeout(15):
        while not await check():  # noqa: ASYNC110 -- polling another process over HTTP
            await asyncio.sleep(0.05)


def _config(app_port: int, state_dir: Path, **extra: Any) -> Config:
    raw: dict[str, Any] = {
        "app": {"base_url": f"http://127.0.0.1:{app_port}"},
        "scrape": {
            "interval": "1s",
            "timeout": "500ms",
            "maps": [{"path": "caches", "labels": ["cache"]}],
            "retry": {"attempts": 1},
        },
        "rules": {"files": []},
        "server": {"listen": "127.0.0.1:0"},
        "state_dir": str(state_dir),
    }
    for key, value in extra.items():
        raw[key] = {**raw.get(key, {}), **value}
    return Config.validate(raw)


@pytest.fixture
async def demo() -> AsyncIterator[tuple[DemoApp, web.AppRunner]]:
    runner = await serve("127.0.0.1", 0, DemoApp(clock=lambda: FROZEN, wall=lambda: 1.7e9))
    yield runner.app[DEMO_APP], runner
    await runner.cleanup()


async def test_metrics_follow_the_app_and_survive_its_death(
    demo: tuple[DemoApp, web.AppRunner], tmp_path: Path
) -> None:
    """/metrics shows the app's numbers; when the app goes away target_up is 0 and we serve on."""
    app, runner = demo
    port = runner.addresses[0][1]
    families: dict[str, Any] = {}
    async with (
        running(Sidecar(_config(port, tmp_path))) as sidecar,
        aiohttp.ClientSession() as http,
    ):
        base = f"http://127.0.0.1:{sidecar.port}"

        async def scraped() -> bool:
            async with http.get(f"{base}/metrics") as resp:
                text = await resp.text()
            families.clear()
            families.update({f.name: f for f in text_string_to_metric_families(text)})
            return "go_memstats_heap_alloc_bytes" in families

        await _eventually(scraped)
        memstats = app.vars()["memstats"]

        def value(name: str, **labels: str) -> float:
            fam = families[name]
            return float(next(s.value for s in fam.samples if s.labels == labels))

        assert value("go_memstats_heap_alloc_bytes") == memstats["HeapAlloc"]
        assert families["go_memstats_heap_alloc_bytes"].type == "gauge"
        assert value("go_memstats_mallocs") == memstats["Mallocs"]
        assert families["go_memstats_mallocs"].type == "counter"
        assert value("go_gc_cycles") == memstats["NumGC"]
        assert value("cache_keys_total") == app.vars()["cache_keys_total"]
        for cache, keys in app.vars()["caches"].items():
            assert value("caches", cache=cache) == keys
        assert value("leak_sidecar_target_up") == 1.0

        await runner.cleanup()  # the app goes away

        async def down() -> bool:
            await scraped()
            return value("leak_sidecar_target_up") == 0.0

        await _eventually(down)
        assert "go_memstats_heap_alloc_bytes" not in families  # stale: not exported
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 200
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 200


async def test_the_command_starts_and_stops_cleanly_on_sigterm(
    demo: tuple[DemoApp, web.AppRunner], tmp_path: Path
) -> None:
    """`leak-sidecar run` logs sidecar.started with its port and the C range kernels, serves,
    and exits 0 on SIGTERM."""
    _, runner = demo
    cfg = tmp_path / "sidecar.yaml"
    cfg.write_text(
        f"app:\n  base_url: http://127.0.0.1:{runner.addresses[0][1]}\n"
        "rules:\n  files: []\n"
        "server:\n  listen: 127.0.0.1:0\n"
        f"state_dir: {tmp_path / 'state'}\n"
        "log:\n  format: json\n"
    )
    log = tmp_path / "sidecar.log"
    async with sidecar_command(cfg, log, "s3cret-token") as cmd, aiohttp.ClientSession() as http:
        async with http.get(f"{cmd.url}/readyz") as resp:
            assert resp.status == 200
        async with http.post(f"{cmd.url}/v1/cache/flush", json={}) as resp:
            assert resp.status == 401
        cmd.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await cmd.proc.wait() == 0
    out = log.read_bytes()
    records = [json.loads(x) for x in out.splitlines() if x.startswith(b"{")]
    events = [r["event"] for r in records]
    assert events.count("sidecar.started") == 1
    started = records[events.index("sidecar.started")]
    assert started["range_kernels"] == "c"
    assert events[-1] == "sidecar.stopped"
    assert b"s3cret-token" not in out


async def test_status_page_shows_the_live_state(
    demo: tuple[DemoApp, web.AppRunner], tmp_path: Path
) -> None:
    """GET / on a running sidecar: target up, the rule firing with its value, the chart."""
    _, runner = demo
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "groups:\n  - name: live\n    rules:\n      - alert: PoolKnown\n"
        "        expr: conn_pool_max > 0\n"
    )
    cfg = _config(
        runner.addresses[0][1],
        tmp_path / "state",
        rules={"files": [str(rules)], "evaluation_interval": "1s"},
    )
    page: dict[str, Node] = {}
    async with running(Sidecar(cfg)) as sidecar, aiohttp.ClientSession() as http:

        async def firing() -> bool:
            async with http.get(f"http://127.0.0.1:{sidecar.port}/") as resp:
                assert resp.status == 200
                page["doc"] = parse_html(await resp.text())
            return "firing" in page["doc"].by_id("rules-table").text()

        await _eventually(firing)
    doc = page["doc"]
    assert doc.by_id("target-health").text() == "up"
    assert doc.by_id("breaker-state").text() == "closed"
    [row] = [r for r in doc.by_id("rules-table").iter("tr") if "PoolKnown" in r.text()]
    assert [c.text() for c in row.iter("td")][2:5] == ["firing", "ok", "100"]
    assert "conn_pool_max" in doc.by_id("chart-0").text()
