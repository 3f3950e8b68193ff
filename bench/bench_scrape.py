"""Scrape cost: decode+flatten time, full HTTP scrape time over loopback, peak RSS growth.

Three bodies: Go's real /debug/vars (tests/fixtures/goapp/vars.json), and the same body
with one more expvar.Map of Ints grown to about 1 MB and 20 MB (500k keys), written in
Go's Map format. Every measurement runs in a fresh subprocess so that one case's memory
peak cannot hide another's; the parent only serves the bodies over 127.0.0.1.

Modes, per body:
  flatten  sidecar.scrape.flatten.flatten on a body already in memory (what the sidecar does)
  http     Scraper.scrape_once over loopback: read, cap, decode, flatten, ingest
  orjson   orjson.loads of the whole body (the alternative decoder, for comparison)
  msgspec  msgspec.json.decode of the whole body into Python objects (same)
  http_relabel  http, with RELABEL as scrape.metric_relabel_configs
  relabel  sidecar.scrape.relabel on the flattened samples alone (steady state: the
           label sets seen last scrape; the first, cold application is in "cold_ms")

Usage: python bench/bench_scrape.py  (prints a Markdown table)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import orjson
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from sidecar.core.config import Config, ScrapeConfig
from sidecar.scrape.flatten import flatten
from sidecar.scrape.relabel import Relabeller
from sidecar.scrape.scraper import Scraper
from sidecar.store import Store

ROOT = Path(__file__).resolve().parent.parent
GO_VARS = (ROOT / "tests" / "fixtures" / "goapp" / "vars.json").read_bytes()
MODES = ("flatten", "http", "http_relabel", "relabel", "orjson", "msgspec")
RELABEL: list[dict[str, Any]] = [
    # A realistic mapping onto the pack (docs/relabel.md): six steps, every action kind
    # that touches each sample (replace, labelmap, labeldrop, drop, keep).
    {"source_labels": ["__name__"], "regex": "go_memstats_(frees|lookups)_total", "action": "drop"},
    {"source_labels": ["__name__"], "regex": "leaky_(.+)_keys", "target_label": "cache"},
    {
        "source_labels": ["__name__"],
        "regex": "leaky_.+_keys",
        "target_label": "__name__",
        "replacement": "cache_keys_total",
    },
    {
        "source_labels": ["__name__"],
        "regex": "goroutines|num_goroutine",
        "target_label": "__name__",
        "replacement": "goroutines",
    },
    {"regex": "__tmp_(.+)", "action": "labelmap"},
    {"regex": "__tmp_.+", "action": "labeldrop"},
]
RUNS = {"go": 50, "1mb": 10, "20mb": 3}


def with_map(keys: int) -> bytes:
    """Go's body plus a ``sessions`` expvar.Map of ``keys`` Ints, as Go prints a Map."""
    entries = ", ".join(f'"session-{i:012d}-eu-west-1": {i * 7919 % 100003}' for i in range(keys))
    return GO_VARS.replace(b'"requests":', b'"sessions": {' + entries.encode() + b'},\n"requests":')


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} in /proc/self/status: this benchmark needs Linux")


def _start_peak() -> int:
    """Reset the peak RSS to the current RSS (Linux clear_refs 5) and return it, in KiB.

    getrusage's ru_maxrss survives fork and exec, so a child would inherit the parent's
    peak; VmHWM belongs to the address space and can be reset.
    """
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS")


def _peak_kib() -> int:
    return _status_kib("VmHWM")


# -- child: one mode, one body -------------------------------------------------------------


async def child_http(url: str, small_url: str, runs: int, relabel: bool) -> dict[str, Any]:
    def scraper(session: aiohttp.ClientSession, target: str) -> Scraper:
        base, _, path = target.partition("/debug")
        cfg = Config.validate(
            {
                "app": {"base_url": base, "expvar_path": "/debug" + path},
                "scrape": {
                    "max_body_bytes": "64MiB",
                    "soft_body_bytes": "64MiB",
                    "metric_relabel_configs": RELABEL if relabel else [],
                },
                "server": {"listen": "127.0.0.1:9120"},
            }
        )
        store = Store(retention_ms=3_600_000, max_series=20_000)
        return Scraper(cfg, store, session, CollectorRegistry())

    async with aiohttp.ClientSession() as session:
        await scraper(session, small_url).scrape_once()  # warm every code path up
        s = scraper(session, url)
        before = _start_peak()
        t0 = time.perf_counter()
        snap = await s.scrape_once()
        first = time.perf_counter() - t0
        growth = _peak_kib() - before
        times = [first]
        for _ in range(runs - 1):
            t0 = time.perf_counter()
            await s.scrape_once()
            times.append(time.perf_counter() - t0)
    return {"seconds": statistics.median(times), "growth_kib": growth, "series": len(snap.samples)}


def _child_decode(mode: str, body_path: str, runs: int) -> dict[str, Any]:
    cfg = ScrapeConfig.validate({"max_body_bytes": "64MiB", "soft_body_bytes": "64MiB"})
    path = Path(body_path)
    body = bytearray(path.stat().st_size)
    with path.open("rb") as f:
        f.readinto(body)
    small = bytearray(GO_VARS)

    if mode == "relabel":
        return _child_relabel(body, runs)

    def once(data: bytearray) -> int:
        if mode == "flatten":
            return len(flatten(data, cfg).samples)
        if mode == "orjson":
            return len(orjson.loads(data))
        return len(msgspec.json.decode(data))

    once(small)
    before = _start_peak()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        n = once(body)
        times.append(time.perf_counter() - t0)
        if not times[1:]:
            growth = _peak_kib() - before
    return {"seconds": statistics.median(times), "growth_kib": growth, "series": n}


def _child_relabel(body: bytearray, runs: int) -> dict[str, Any]:
    cfg = ScrapeConfig.validate(
        {"max_body_bytes": "64MiB", "soft_body_bytes": "64MiB", "metric_relabel_configs": RELABEL}
    )
    samples = flatten(body, cfg).samples
    relabeller = Relabeller(cfg.metric_relabel_configs)
    before = _start_peak()
    t0 = time.perf_counter()
    out = relabeller.apply(samples)
    cold = time.perf_counter() - t0
    growth = _peak_kib() - before
    times = []
    for _ in range(max(runs, 20)):
        t0 = time.perf_counter()
        out = relabeller.apply(samples)
        times.append(time.perf_counter() - t0)
    return {
        "seconds": statistics.median(times),
        "cold_ms": round(cold * 1000, 3),
        "growth_kib": growth,
        "series": len(out.samples),
    }


# -- parent: serve the bodies, spawn one child per measurement -----------------------------


async def _measure(cases: dict[str, bytes]) -> list[dict[str, Any]]:
    current = {"body": GO_VARS}

    async def vars_(_: web.Request) -> web.Response:
        return web.Response(body=current["body"], content_type="application/json")

    async def small(_: web.Request) -> web.Response:
        return web.Response(body=GO_VARS, content_type="application/json")

    app = web.Application()
    app.router.add_get("/debug/vars", vars_)
    app.router.add_get("/debug/small", small)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for case, data in cases.items():
                current["body"] = data
                path = Path(tmp) / f"{case}.json"
                path.write_bytes(data)
                for mode in MODES:
                    proc = await asyncio.create_subprocess_exec(
                        sys.executable,
                        __file__,
                        "--child",
                        mode,
                        "--body",
                        str(path),
                        "--url",
                        f"http://127.0.0.1:{port}/debug/vars",
                        "--small-url",
                        f"http://127.0.0.1:{port}/debug/small",
                        "--runs",
                        str(RUNS[case]),
                        stdout=asyncio.subprocess.PIPE,
                    )
                    out, _ = await proc.communicate()
                    if proc.returncode != 0:
                        raise SystemExit(f"{case}/{mode}: child failed")
                    rows.append({"case": case, "mode": mode, "bytes": len(data), **json.loads(out)})
    finally:
        await runner.cleanup()
    return rows


def _mode(row: dict[str, Any]) -> str:
    return f"{row['mode']} (cold {row['cold_ms']} ms)" if "cold_ms" in row else str(row["mode"])


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| body | size | mode | median time | peak RSS growth | growth / body | samples |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        growth = r["growth_kib"] * 1024
        lines.append(
            f"| {r['case']} | {r['bytes'] / 1e6:.2f} MB | {_mode(r)} "
            f"| {r['seconds'] * 1000:.2f} ms | {growth / 1e6:.1f} MB "
            f"| {growth / r['bytes']:.2f}x | {r['series']} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--child", choices=MODES)
    p.add_argument("--body")
    p.add_argument("--url")
    p.add_argument("--small-url")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    # Stdout carries the child's result; the scraper's log lines go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    if args.child in {"http", "http_relabel"}:
        relabel = args.child == "http_relabel"
        print(json.dumps(asyncio.run(child_http(args.url, args.small_url, args.runs, relabel))))
    elif args.child:
        print(json.dumps(_child_decode(args.child, args.body, args.runs)))
    else:
        cases = {"go": GO_VARS, "1mb": with_map(24_000), "20mb": with_map(500_000)}
        print(_table(asyncio.run(_measure(cases))))


if __name__ == "__main__":
    main()
