"""The performance table: each figure next to its peer's, measured in the same run.

    python bench/table.py                    # the table (about 2 minutes)
    python bench/table.py --soak             # 20 minutes of 100 ms scrapes: the RSS slope
    python bench/table.py --soak --soak-minutes 3

Rows (the peers run on the same machine, at the same time or interleaved, on the same data):

* rule evaluation: bench_promql.py's 20 rules on 160 series, ours per cycle against
  Prometheus's own ``prometheus_rule_group_last_duration_seconds`` on the same backfilled
  data, in the same seconds (``bench_promql.side_by_side``: one of our cycles at each
  read of Prometheus's gauge; needs ``prometheus`` and ``promtool``);
* scrape: a real Go app's default /debug/vars, fetch to stored, ours (``Scraper.scrape_once``)
  against client_golang's expvar collector reading the same app over HTTP, fetch to
  gathered (bench/goexpvar, built with Debian's golang-github-prometheus-client-golang-dev);
  rounds alternate so that both see the same machine;
* steady RSS: ``leak-sidecar run`` with the shipped pack at 1 s scrapes on the demo app,
  with only the runtime lock's packages importable (what the image holds), against a
  Python process that only serves aiohttp and scrapes the same app every second;
* journaled webhooks: bench_webhook.py's run, 5,000 Alertmanager deliveries to
  ``POST /alerts`` from 32 concurrent clients (its Go load client, bench/webhookload),
  each holding a circuit open, so journaled and fsynced before its 200, against the same
  deliveries with action none (parsed, authenticated, routed, answered; nothing
  journaled) to the same sidecar in the same run; the ratio is of the rates.

The machine comes first: CPU model, cores, Python, Go, Prometheus. Exit status: 0 when
the command ran (goals met or not: the table says which), 1 on a soak beyond tolerance.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_promql  # siblings: the benchmarks this table is made of
import bench_scrape
import bench_sidecar as bs
import bench_webhook
import soak

BENCH = Path(__file__).resolve().parent
ROUNDS = 5
SCRAPES_PER_ROUND = 200
RSS_SECONDS = 30.0
WEBHOOK_DELIVERIES = 5000
WEBHOOK_CLIENTS = 32

FLOOR = """
import asyncio, sys
import aiohttp
from aiohttp import web

async def main(url, port):
    app = web.Application()
    app.router.add_get("/readyz", lambda _: web.Response(text="ok"))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(url) as resp:
                await resp.read()
            await asyncio.sleep(1)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""
"""The floor for the RSS row: Python, asyncio, aiohttp serving and scraping, nothing else."""


def machine() -> str:
    cpu = "unknown cpu"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    versions = [f"Python {platform.python_version()}"]
    for tool, args in (("go", ["version"]), ("prometheus", ["--version"])):
        if shutil.which(tool):
            out = subprocess.run([tool, *args], capture_output=True, text=True, check=False)
            words = (out.stdout or out.stderr).replace(",", "").split()
            versions.append(f"{tool} {words[2]}")
    return f"{cpu}, {os.cpu_count()} cores; " + ", ".join(versions)


def build_go_peer(tmp: Path) -> Path:
    """``go build`` bench/goexpvar against Debian's client_golang, offline."""
    gopath = "/usr/share/gocode"
    if not (Path(gopath) / "src/github.com/prometheus/client_golang").is_dir():
        raise SystemExit("the Go peer needs Debian's golang-github-prometheus-client-golang-dev")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": gopath,
        "GOCACHE": str(tmp / "gocache"),
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    binary = tmp / "goexpvar"
    subprocess.run(
        ["go", "build", "-o", str(binary), "main.go"], cwd=BENCH / "goexpvar", env=env, check=True
    )
    return binary


def scrape_row(tmp: Path) -> tuple[float, float]:
    """Median ms per scrape: ours, the Go peer's, rounds alternating on one Go app."""
    peer = build_go_peer(tmp)
    app = subprocess.Popen([peer, "app"], stdout=subprocess.PIPE, text=True)
    try:
        assert app.stdout is not None
        url = f"http://{app.stdout.readline().strip()}/debug/vars"
        ours, theirs = [], []
        for _ in range(ROUNDS):
            got = asyncio.run(bench_scrape.child_http(url, url, SCRAPES_PER_ROUND, False))
            ours.append(got["seconds"] * 1000)
            out = subprocess.run(
                [peer, "collect", "-url", url, "-n", str(SCRAPES_PER_ROUND)],
                capture_output=True,
                text=True,
                check=True,
            )
            theirs.append(json.loads(out.stdout)["median_ms"])
    finally:
        app.terminate()
        app.wait(10)
    return statistics.median(ours), statistics.median(theirs)


def rss_row(tmp: Path) -> tuple[float, float]:
    """(ours, the floor's) RSS in MiB after ``RSS_SECONDS`` side by side on the demo app."""
    app_port, side_port, floor_port = bs.port(), bs.port(), bs.port()
    app = bs.start_demo_app(app_port)
    procs = [app]
    try:
        bs.wait(f"http://127.0.0.1:{app_port}/debug/vars")
        hidden = bs.hide_optional(tmp, bs.not_in_runtime_lock())
        side = bs.launch(bs.config(tmp, app_port, side_port), env=hidden)
        procs.append(side)
        url = f"http://127.0.0.1:{app_port}/debug/vars"
        floor = subprocess.Popen([sys.executable, "-c", FLOOR, url, str(floor_port)])
        procs.append(floor)
        bs.wait(f"http://127.0.0.1:{side_port}/readyz")
        bs.wait(f"http://127.0.0.1:{floor_port}/readyz")
        time.sleep(RSS_SECONDS)
        return bs.rss_mib(side.pid), bs.rss_mib(floor.pid)
    finally:
        bs.stop(*reversed(procs))


def webhook_row(notes: list[str]) -> str:
    """The journaled deliveries against the same ones with action none, one sidecar."""
    got = bench_webhook.measure(WEBHOOK_DELIVERIES, WEBHOOK_CLIENTS, "go")
    rate, peer_rate = got.rate(got.journaled), got.rate(got.none)
    p99, peer_p99 = got.p99(got.journaled), got.p99(got.none)
    if got.commits:
        notes.append(
            f"webhook journal: {got.entries:.0f} entries in {got.commits:.0f} commits "
            f"({got.entries / got.commits:.1f} per fsync)"
        )
    return (
        f"| webhook, {WEBHOOK_DELIVERIES:,} journaled deliveries, {WEBHOOK_CLIENTS} concurrent "
        f"| {rate:,.0f}/s, p99 {p99:.1f} ms "
        f"| same deliveries, action none: {peer_rate:,.0f}/s, p99 {peer_p99:.1f} ms "
        f"| {rate / peer_rate:.2f}x the rate "
        f"| >= {bench_webhook.GOAL_RATE:,.0f}/s, p99 < {bench_webhook.GOAL_P99_MS:g} ms "
        f"| {'met' if got.met else 'not met'} |"
    )


def _row(
    what: str, ours: float, peer_label: str, peer: float | None, unit: str, goal: float
) -> str:
    if peer is None:
        return f"| {what} | {ours:.2f} {unit} | {peer_label}: no figure | - | <= {goal:g}x | ? |"
    ratio = ours / peer
    met = "met" if ratio <= goal else "not met"
    return (
        f"| {what} | {ours:.2f} {unit} | {peer_label}: {peer:.2f} {unit} | {ratio:.2f}x "
        f"| <= {goal:g}x | {met} |"
    )


def table() -> None:
    print(f"machine: {machine()}\n")
    rows, notes = [], []
    cycles = 20
    for label, step_ms, steps in bench_promql.WORKLOADS:
        both = bench_promql.side_by_side(label, step_ms, steps, cycles)
        what = f"20 leak rules, 160 series, {label}, median evaluation"
        if both is None:
            rows.append(f"| {what} | no figure | Prometheus: no figure | - | <= 1x | ? |")
            continue
        (ours, ours_best), (peer, peer_best) = both
        rows.append(_row(what, ours, "Prometheus", peer, "ms", 1.0))
        notes.append(
            f"{label}, best cycle in the same seconds: ours {ours_best:.2f} ms, Prometheus "
            f"{peer_best:.2f} ms ({ours_best / peer_best:.2f}x)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        ours, peer = scrape_row(Path(tmp))
        what = "scrape of a real Go app's default /debug/vars, fetch to stored"
        rows.append(_row(what, ours, "client_golang expvar collector", peer, "ms", 1.0))
        ours_rss, floor_rss = rss_row(Path(tmp))
    rss = "met" if ours_rss <= 50 else "not met"
    rows.append(
        f"| steady RSS, shipped pack, 1 s scrapes, demo app, {RSS_SECONDS:.0f} s in "
        f"| {ours_rss:.1f} MiB | Python + aiohttp serving and scraping: {floor_rss:.1f} MiB "
        f"| {ours_rss / floor_rss:.2f}x | <= 50 MiB | {rss} |"
    )
    rows.append(webhook_row(notes))
    print("\n| what | leak-sidecar | peer, same run | ratio | goal | |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    print("\n".join(rows))
    print("\n" + "\n".join(notes))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--soak", action="store_true", help="run the soak instead of the table")
    ap.add_argument("--soak-minutes", type=float, default=20.0, help="soak length (default 20)")
    ap.add_argument(
        "--soak-tolerance",
        type=float,
        default=soak.TOLERANCE_MIB_PER_HOUR,
        help="largest RSS slope, MiB per hour, the soak accepts (default %(default)g)",
    )
    args = ap.parse_args()
    # Stdout carries the table; the scrapers' log lines go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    if args.soak:
        print(f"machine: {machine()}")
        return soak.run(args.soak_minutes, args.soak_tolerance)
    table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
