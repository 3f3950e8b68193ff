"""Leak start -> break call: the embedded engine against Prometheus + Alertmanager.

The same Go service (tests/fixtures/goservice, its ``POST /test/leak``: the expvar
``cache_keys_total`` grows 10000 a second), the same rule (``cache_keys_total > 3000``,
``for`` as given, ``action: circuit_break``) and the same intervals in both modes:

  embedded   the sidecar scrapes the app every INTERVAL and evaluates the rule every
             INTERVAL itself, handing its alert to its own receiver in process
  fleet      the sidecar scrapes the app every INTERVAL; a real Prometheus scrapes the
             sidecar and evaluates the rule every INTERVAL and sends to a real
             Alertmanager (group_wait 0s), whose webhook posts to the sidecar's /alerts

Latency is measured on the app's clock: the time its leak started to the time it
received ``POST /v1/circuit/break`` (both from its own call log). Every run starts fresh
processes. Prints a Markdown table.

Usage: python bench/bench_latency.py [--runs N] [--interval 1s] [--for 1s]
(needs `go`, `prometheus` and `prometheus-alertmanager`)
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
# The integration tests' process starters: the same real processes, started the same way.
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "integration")]

from conftest import free_port, running  # noqa: E402
from fleet_support import eventually, query  # noqa: E402
from goservice import build_goservice, goservice  # noqa: E402
from procs import alertmanager, alertmanager_config, prometheus  # noqa: E402

from sidecar.core.config import Config  # noqa: E402
from sidecar.supervisor import Sidecar  # noqa: E402

TOKEN = "bench-token"
BREAK = "/v1/circuit/break"


def _rule(hold: str) -> str:
    return f"""
groups:
  - name: bench
    rules:
      - alert: CacheKeysLeaking
        expr: cache_keys_total > 3000
        for: {hold}
        labels:
          action: circuit_break
"""


def _prepare(tmp: Path, hold: str) -> Path:
    """The run's directory, with the rule file in it."""
    tmp.mkdir(parents=True)
    rules = tmp / "rules.yml"
    rules.write_text(_rule(hold))
    return rules


def _sidecar(tmp: Path, app_url: str, interval: str, rules: list[str]) -> Config:
    return Config.validate(
        {
            "app": {"base_url": app_url},
            "scrape": {"interval": interval, "timeout": "500ms"},
            "rules": {"files": rules, "evaluation_interval": interval},
            "server": {"listen": "127.0.0.1:0"},
            "state_dir": str(tmp / "state"),
            "token": TOKEN,
            "log": {"level": "warning"},
        }
    )


async def _break_latency(
    app_calls: Callable[[], Awaitable[list[dict[str, Any]]]], leak_at: float
) -> float:
    """Seconds from the leak to the first break call, both on the app's clock (so the
    polling interval does not enter the figure)."""
    calls = await eventually(app_calls, bool, within=120)
    return float(calls[0]["at"]) - leak_at


async def embedded(binary: Path, tmp: Path, interval: str, hold: str) -> float:
    rules = _prepare(tmp, hold)
    async with AsyncExitStack() as stack:
        app = await stack.enter_async_context(goservice(binary))
        cfg = _sidecar(tmp, app.url, interval, [str(rules)])
        await stack.enter_async_context(running(Sidecar(cfg)))
        await asyncio.sleep(1.5)  # a first scrape and evaluation, as a running pod has
        leak_at = await app.leak()
        return await _break_latency(lambda: app.calls(BREAK), leak_at)


async def fleet(binary: Path, tmp: Path, interval: str, hold: str) -> float:
    rules = _prepare(tmp, hold)
    token = tmp / "token"
    token.write_text(TOKEN)
    async with AsyncExitStack() as stack:
        app = await stack.enter_async_context(goservice(binary))
        sidecar = await stack.enter_async_context(
            running(Sidecar(_sidecar(tmp, app.url, interval, [])))
        )
        url = f"http://127.0.0.1:{sidecar.port}"
        am = await stack.enter_async_context(
            alertmanager(
                tmp / "am",
                alertmanager_config(f"{url}/alerts", token, group_wait="0s", group_interval="1s"),
                port=free_port(),
            )
        )
        prom_config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(rules)],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am.port}"]}]}]
            },
            "scrape_configs": [
                {"job_name": "leak-sidecar", "static_configs": [{"targets": [url[7:]]}]}
            ],
        }
        prom = await stack.enter_async_context(
            prometheus(tmp / "prometheus", yaml.safe_dump(prom_config))
        )
        async with aiohttp.ClientSession() as http:
            # A first scrape and evaluation, as a running Prometheus has.
            await eventually(lambda: query(http, prom.url, "up"), bool, within=30)
        leak_at = await app.leak()
        return await _break_latency(lambda: app.calls(BREAK), leak_at)


def _row(mode: str, values: list[float]) -> str:
    return (
        f"| {mode} | {len(values)} | {min(values):.2f} | {statistics.median(values):.2f} "
        f"| {max(values):.2f} |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--interval", default="1s", help="scrape and evaluation interval")
    parser.add_argument("--for", dest="hold", default="1s", help="the rule's for:")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        binary = build_goservice(tmp / "build")
        results: dict[str, list[float]] = {"embedded": [], "Prometheus + Alertmanager": []}
        for run in range(args.runs):
            results["embedded"].append(
                await embedded(binary, tmp / f"e{run}", args.interval, args.hold)
            )
            results["Prometheus + Alertmanager"].append(
                await fleet(binary, tmp / f"f{run}", args.interval, args.hold)
            )
    print(
        f"leak start -> break call, seconds; intervals {args.interval}, for: {args.hold}, "
        f"Alertmanager group_wait 0s; {platform.machine()}, {platform.python_version()}"
    )
    print()
    print("| mode | runs | min | median | max |")
    print("| --- | --- | --- | --- | --- |")
    for mode, values in results.items():
        print(_row(mode, values))


if __name__ == "__main__":
    asyncio.run(main())
