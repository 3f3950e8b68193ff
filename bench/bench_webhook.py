"""Webhook throughput and latency: journaled deliveries against the same ones with action none.

Starts `leak-sidecar demo-app` and `leak-sidecar run` as separate processes on loopback,
then posts Alertmanager notifications to `POST /alerts` from `--clients` concurrent
connections: first `--deliveries` whose alert routes to action none (parsed, routed and
answered, nothing journaled: the peer row), then as many whose alert (a new instance
each) holds the circuit open, so that every one is a decision journaled and fsynced
before its 200. Prints deliveries per second, the latency percentiles, and how many
entries each journal commit (one write and one fsync) carried; first, in this process,
what decoding one of Alertmanager's notifications into the sidecar's alerts costs.

The load comes from `bench/webhookload`, a Go client built here with `go`, so that on a
small machine the client takes as little of the CPU as it can; `--client python`
sends it from this process with aiohttp instead.

    python bench/bench_webhook.py [--deliveries 5000] [--clients 32] [--client go|python]

``measure`` is also bench/table.py's webhook row.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_sidecar as bs  # a sibling script, not a package

from sidecar.actions.receiver import parse_payload

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
STARTS = "2024-01-01T00:00:00Z"
GOAL_RATE = 2000.0
"""Journaled deliveries per second the issue asks for, at 32 concurrent clients."""
GOAL_P99_MS = 20.0


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def _body(action: str, n: int) -> bytes:
    alert = {
        "status": "firing",
        "labels": {"alertname": "BenchLeak", "action": action, "n": str(n)},
        "annotations": {},
        "startsAt": STARTS,
    }
    return orjson.dumps({"version": "4", "groupKey": f"bench/{n}", "alerts": [alert]})


def decode_us(alerts: int) -> float:
    """Microseconds of CPU to validate a notification of ``alerts`` alerts (Alertmanager's
    own, as a test fixture keeps it) and build its ``Alert`` values: the best of 15 runs."""
    fixture = ROOT / "tests" / "fixtures" / "alertmanager" / "poolsaturated_firing.json"
    payload = orjson.loads(fixture.read_bytes())
    payload["alerts"] *= alerts
    body = orjson.dumps(payload)

    def once() -> None:
        for alert in parse_payload(body).alerts:
            alert.to_alert()

    n = 2000
    # CPU time: on a shared machine, wall time measures the neighbours as much.
    return min(timeit.repeat(once, number=n, repeat=15, timer=time.process_time)) / n * 1e6


async def _run(url: str, bodies: list[bytes], clients: int) -> tuple[float, list[float]]:
    """Post every body, ``clients`` at a time; the wall time and each request's latency."""
    latencies: list[float] = []
    todo = iter(bodies)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    async def client(session: aiohttp.ClientSession) -> None:
        for body in todo:
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    raise SystemExit(f"POST /alerts answered {r.status}: {await r.text()}")
            latencies.append(time.perf_counter() - t0)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return time.perf_counter() - t0, latencies


def _build_go(tmp: str) -> Path:
    go = shutil.which("go")
    if go is None:
        raise SystemExit("go is not installed (Debian: golang-go); or use --client python")
    env = {
        **os.environ,
        "GOCACHE": f"{tmp}/gocache",
        "GOPATH": f"{tmp}/gopath",
        "GOTOOLCHAIN": "local",
        "GOPROXY": "off",
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    binary = Path(tmp) / "webhookload"
    subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=ROOT / "bench" / "webhookload",
        env=env,
        check=True,
    )
    return binary


def _run_go(
    binary: Path, url: str, action: str, first: int, n: int, clients: int
) -> tuple[float, list[float]]:
    argv = [str(binary), f"-url={url}", f"-token={TOKEN}", f"-action={action}"]
    argv += [f"-first={first}", f"-n={n}", f"-clients={clients}"]
    done = subprocess.run(argv, capture_output=True, check=False)
    if done.returncode != 0:
        raise SystemExit(done.stderr.decode(errors="replace"))
    result = orjson.loads(done.stdout)
    return float(result["wall"]), [float(x) for x in result["latencies"]]


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def _row(name: str, wall: float, lat: list[float]) -> tuple[float, float]:
    rate = len(lat) / wall
    print(
        f"{name:<10} {len(lat):>6} deliveries in {wall:6.2f}s = {rate:7.0f}/s   "
        f"p50 {_pct(lat, 0.50):6.1f} ms   p99 {_pct(lat, 0.99):6.1f} ms   "
        f"max {max(lat) * 1000:6.1f} ms"
    )
    return rate, _pct(lat, 0.99)


@dataclass(frozen=True)
class Result:
    """One run: each phase's wall time and latencies, and the journal's commits."""

    none: tuple[float, list[float]]
    journaled: tuple[float, list[float]]
    commits: float
    entries: float

    @staticmethod
    def rate(phase: tuple[float, list[float]]) -> float:
        wall, lat = phase
        return len(lat) / wall

    @staticmethod
    def p99(phase: tuple[float, list[float]]) -> float:
        return _pct(phase[1], 0.99)

    @property
    def met(self) -> bool:
        return self.rate(self.journaled) >= GOAL_RATE and self.p99(self.journaled) < GOAL_P99_MS


def measure(deliveries: int = 5000, clients: int = 32, client: str = "go") -> Result:
    """Start a demo app and a sidecar, post ``deliveries`` with action none, then as many
    journaled ones, ``clients`` at a time; stop both."""
    app_port, side_port = bs.port(), bs.port()
    base = f"http://127.0.0.1:{side_port}"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "sidecar.yaml"
        cfg.write_text(
            f"app:\n  base_url: http://127.0.0.1:{app_port}\n"
            f"server:\n  listen: 127.0.0.1:{side_port}\n  max_connections: {clients * 2}\n"
            f"state_dir: {tmp}/state\nlog:\n  level: warning\n"
        )
        env = {**os.environ, "LEAK_SIDECAR_TOKEN": TOKEN}
        cli = [sys.executable, "-m", "sidecar"]
        # Run from the temporary directory: the installed package, not the source tree. Their
        # log lines go to stderr: stdout carries the figures (bench/table.py's too).
        listen = f"127.0.0.1:{app_port}"
        app = subprocess.Popen([*cli, "demo-app", "--listen", listen], cwd=tmp, stdout=sys.stderr)
        side = subprocess.Popen(
            [*cli, "run", "--config", str(cfg)], env=env, cwd=tmp, stdout=sys.stderr
        )
        try:
            bs.wait(f"http://127.0.0.1:{app_port}/debug/vars")
            bs.wait(f"{base}/readyz")
            url = f"{base}/alerts"
            if client == "go":
                binary = _build_go(tmp)

                def load(action: str, first: int, count: int) -> tuple[float, list[float]]:
                    return _run_go(binary, url, action, first, count, clients)
            else:

                def load(action: str, first: int, count: int) -> tuple[float, list[float]]:
                    bodies = [_body(action, first + i) for i in range(count)]
                    return asyncio.run(_run(url, bodies, clients))

            load("none", -1000, 200)  # warm-up
            none = load("none", 0, deliveries)
            c0 = _metric(f"{base}/metrics", "leak_sidecar_journal_commits_total")
            e0 = _metric(f"{base}/metrics", "leak_sidecar_journal_entries_total")
            journaled = load("circuit_break", 0, deliveries)
            commits = _metric(f"{base}/metrics", "leak_sidecar_journal_commits_total") - c0
            entries = _metric(f"{base}/metrics", "leak_sidecar_journal_entries_total") - e0
        finally:
            bs.stop(side, app)
    return Result(none, journaled, commits, entries)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--deliveries", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--client", choices=["go", "python"], default="go")
    args = ap.parse_args()
    cpus = os.cpu_count()
    print(f"{platform.machine()}, {cpus} CPUs, Python {platform.python_version()}")
    one, ten = decode_us(1), decode_us(10)
    print(f"decode a notification: 1 alert {one:.1f} us, 10 alerts {ten:.1f} us")
    got = measure(args.deliveries, args.clients, args.client)
    print(
        f"POST /alerts, one alert per delivery, {args.clients} concurrent clients "
        f"({args.client} client)"
    )
    rate_none, _ = _row("none", *got.none)
    rate, _ = _row("journaled", *got.journaled)
    print(f"journaled / none: {rate / rate_none:.2f}x the rate")
    if got.commits:
        per = got.entries / got.commits
        print(
            f"journal: {got.entries:.0f} entries in {got.commits:.0f} commits = {per:.1f} per fsync"
        )
    print(f"goal >= 2,000/s with p99 < 20 ms: {'met' if got.met else 'NOT met'}")


if __name__ == "__main__":
    main()
