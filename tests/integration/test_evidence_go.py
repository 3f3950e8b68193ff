"""Evidence from a real Go service: tests/fixtures/leakapp, built with the local toolchain.

The app serves expvar and net/http/pprof on two loopback listeners and, once told to,
leaks 1KiB values into a map[string]interface{} in ``main.leakSessions`` and parks
goroutines in ``main.stuckWorker``. A whole sidecar runs in process against it with a
one-rule pack; the Go toolchain's ``go tool pprof`` opens what it captured.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import free_port, running
from leakapp_support import build_leakapp, go, go_env, leakapp
from prometheus_client import CollectorRegistry

from sidecar.core.config import Config
from sidecar.supervisor import Sidecar

pytestmark = pytest.mark.integration

TOKEN = "evidence-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RULES = """groups:
  - name: leak
    interval: 1s
    rules:
      - alert: SessionsLeaking
        expr: cache_keys > 10000
        labels:
          action: none
          evidence: "true"
"""


@pytest.fixture(scope="session")
def leakapp_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The leak app, built once per session."""
    return build_leakapp(tmp_path_factory)


def _config(app: str, pprof: str, tmp_path: Path, **evidence: Any) -> Config:
    rules = tmp_path / "leak.yml"
    rules.write_text(RULES)
    return Config.validate(
        {
            "app": {"base_url": app},
            "scrape": {"interval": "1s", "timeout": "500ms", "retry": {"attempts": 1}},
            "rules": {"files": [str(rules)], "evaluation_interval": "1s", "resend_delay": "1s"},
            "evidence": {"pprof_url": pprof, "warmup": "0s", **evidence},
            "server": {"listen": "127.0.0.1:0"},
            "state_dir": str(tmp_path / "state"),
            "token": TOKEN,
        }
    )


async def _eventually(check: Callable[[], Awaitable[bool]], within: float = 30) -> None:
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 -- polling another process over HTTP
            await asyncio.sleep(0.1)


async def _json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url, headers=AUTH) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_a_firing_leak_rule_captures_one_bundle_naming_the_leaking_functions(
    leakapp_binary: Path, tmp_path: Path
) -> None:
    """The rule fires, one bundle is kept, its report's top sites are the two new leaks."""
    registry = CollectorRegistry()
    async with (
        leakapp(leakapp_binary) as addr,
        running(
            Sidecar(_config(addr["app"], addr["pprof"], tmp_path), registry=registry)
        ) as sidecar,
        aiohttp.ClientSession() as http,
    ):
        base = f"http://127.0.0.1:{sidecar.port}"
        listing = f"{base}/v1/evidence"

        async def baseline() -> bool:
            return (await _json(http, listing))["data"]["baseline"] is not None

        await _eventually(baseline)
        async with http.post(f"{addr['app']}/leak/start") as resp:
            assert resp.status == 200

        async def captured() -> bool:
            return bool((await _json(http, listing))["data"]["bundles"])

        await _eventually(captured)
        # The alert is re-sent every second: each one meets the cooldown, not a capture.
        await _eventually(
            lambda: _true(
                (_sample(registry, "leak_sidecar_evidence_skipped_total", reason="cooldown") or 0)
                >= 3
            )
        )
        [bundle] = (await _json(http, listing))["data"]["bundles"]
        one = (await _json(http, f"{listing}/{bundle['id']}"))["data"]
        async with http.get(f"{listing}/{bundle['id']}/heap.pb.gz", headers=AUTH) as resp:
            assert resp.status == 200
            heap = await resp.read()

    assert one["status"] == "captured"
    assert [a["labels"]["alertname"] for a in one["alerts"]] == ["SessionsLeaking"]
    report = one["report"]
    top = report["heap"][0]
    assert (top["function"], top["new"]) == ("main.leakSessions", True)
    assert top["inuse_bytes_growth"] == top["inuse_bytes"]
    assert all(site["function"] != "main.leakSessions" for site in report["heap"][1:])
    stuck = report["goroutines"][0]
    assert (stuck["function"], stuck["new"]) == ("main.stuckWorker", True)
    assert stuck["growth"] == stuck["count"]
    assert stuck["count"] >= 2
    assert _sample(registry, "leak_sidecar_evidence_captures_total", trigger="alert") == 1
    assert _sample(registry, "leak_sidecar_evidence_captures_total", trigger="baseline") == 1

    # Debian's golang-go opens it as Go wrote it: the bytes were stored untouched.
    path = tmp_path / "heap.pb.gz"
    path.write_bytes(heap)
    pprof = await asyncio.create_subprocess_exec(
        go(),
        "tool",
        "pprof",
        "-top",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=go_env(tmp_path),
    )
    async with asyncio.timeout(60):
        out, err = await pprof.communicate()
    assert pprof.returncode == 0, err.decode()
    top_out = out.decode()
    assert "Type: inuse_space" in top_out
    assert "main.leakSessions" in top_out


async def _true(value: bool) -> bool:
    return value


async def test_repeated_firing_without_cooldown_keeps_the_storage_bounds(
    leakapp_binary: Path, tmp_path: Path
) -> None:
    """With no cooldown every re-send captures, one at a time; only max_bundles are kept."""
    registry = CollectorRegistry()
    async with leakapp(leakapp_binary, "-leak", "20") as addr:
        cfg = _config(addr["app"], addr["pprof"], tmp_path, cooldown="0s", max_bundles=2)
        async with (
            running(Sidecar(cfg, registry=registry)) as sidecar,
            aiohttp.ClientSession() as http,
        ):
            async with http.post(f"{addr['app']}/leak/start") as resp:
                assert resp.status == 200

            async def dropped() -> bool:
                return (_sample(registry, "leak_sidecar_evidence_dropped_total") or 0) >= 2

            await _eventually(dropped)
            listing = await _json(http, f"http://127.0.0.1:{sidecar.port}/v1/evidence")
            captures = _sample(registry, "leak_sidecar_evidence_captures_total", trigger="alert")
            gone = _sample(registry, "leak_sidecar_evidence_dropped_total")
            assert sidecar.server is not None
    newer, older = listing["data"]["bundles"]
    # One at a time: the newer capture started after the older one had its profiles.
    assert newer["started"] >= older["time"]
    assert captures == (gone or 0) + 2
    assert sorted(p.name for p in (tmp_path / "state" / "evidence").iterdir()) == sorted(
        [b["id"] for b in listing["data"]["bundles"]] + ["baseline"]
    )


async def test_an_app_without_pprof_is_counted_not_available_not_retried_in_a_loop(
    leakapp_binary: Path, tmp_path: Path, log_stream: io.StringIO
) -> None:
    """No pprof listener: one "not available" bundle and count per cooldown, no error loop."""
    registry = CollectorRegistry()
    nothing = f"http://127.0.0.1:{free_port()}"
    async with leakapp(leakapp_binary, "-pprof", "") as addr:
        assert set(addr) == {"app"}
        cfg = _config(addr["app"], nothing, tmp_path)
        async with (
            running(Sidecar(cfg, registry=registry)) as sidecar,
            aiohttp.ClientSession() as http,
        ):
            async with http.post(f"{addr['app']}/leak/start") as resp:
                assert resp.status == 200
            await _eventually(
                lambda: _true(
                    (
                        _sample(registry, "leak_sidecar_evidence_skipped_total", reason="cooldown")
                        or 0
                    )
                    >= 3
                )
            )
            listing = await _json(http, f"http://127.0.0.1:{sidecar.port}/v1/evidence")
    [bundle] = listing["data"]["bundles"]
    assert bundle["status"] == "not_available"
    assert bundle["problems"][0] == (
        f"heap: {nothing}/debug/pprof/heap refused the connection: nothing serves pprof there"
    )
    failures = {
        part: _sample(
            registry, "leak_sidecar_evidence_failures_total", part=part, reason="not_available"
        )
        for part in ("heap", "goroutine")
    }
    # The baseline tried once at start, the alert once: two GETs in all, then silence.
    assert failures == {"heap": 2, "goroutine": 2}
    events = [json.loads(line)["event"] for line in log_stream.getvalue().splitlines()]
    assert [e for e in events if e.startswith("evidence.")] == [
        "evidence.baseline_failed",
        "evidence.requested",
        "evidence.not_available",
    ]
