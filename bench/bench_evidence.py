"""Evidence capture cost, on the app and on the sidecar, with the real Go leak app.

Builds tests/fixtures/leakapp and runs it holding a steady heap of about 2 MiB, 50 MiB
and 200 MiB (1 KiB values in a map[string]interface{}) and 1000 or 20000 idle worker
goroutines. For
each, a capture as the sidecar makes it (GET /debug/pprof/heap, GET
/debug/pprof/goroutine?debug=1, then decode and report) is repeated ``--runs`` times:

  app CPU     the app process's user+system CPU per capture (/proc/PID/stat, over all runs)
  heap GET    wall time of the heap profile's GET, and its size
  gor. GET    wall time of the goroutine dump's GET
  decode      the sidecar's protobuf decode + per-site sums + report, per capture
  ping p99    the app's own /ping latency while captures run back to back, against idle

Usage: python bench/bench_evidence.py [--runs N]  (prints a Markdown table; needs `go`)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp

from sidecar.evidence import goroutines, profile, report
from sidecar.evidence.fetch import get

ROOT = Path(__file__).resolve().parent.parent
LEAKAPP = ROOT / "tests" / "fixtures" / "leakapp"
CASES = {  # name: (1 KiB map values held, idle goroutines)
    "2 MiB, 1k goroutines": (2_000, 1_000),
    "50 MiB, 1k goroutines": (50_000, 1_000),
    "200 MiB, 1k goroutines": (200_000, 1_000),
    "200 MiB, 20k goroutines": (200_000, 20_000),
}
TICK = os.sysconf("SC_CLK_TCK")


def build(tmp: Path) -> Path:
    out = tmp / "leakapp"
    env = {**os.environ, "GOCACHE": str(tmp / "cache"), "GOFLAGS": "", "CGO_ENABLED": "0"}
    go = shutil.which("go")
    assert go is not None, "go is not installed"
    subprocess.run([go, "build", "-o", str(out), "."], cwd=LEAKAPP, env=env, check=True)
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


async def pings(http: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> list[float]:
    out = []
    while not stop.is_set():
        began = time.perf_counter()
        async with http.get(url) as resp:
            await resp.read()
        out.append(time.perf_counter() - began)
        await asyncio.sleep(0.005)
    return out


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else values[0]


async def capture(http: aiohttp.ClientSession, pprof: str) -> tuple[float, float, float, float]:
    """One capture as the sidecar makes it: (heap GET s, goroutine GET s, decode s, bytes)."""
    t0 = time.perf_counter()
    heap = await get(http, f"{pprof}/debug/pprof/heap", within=60, limit=1 << 30)
    t1 = time.perf_counter()
    dump = await get(http, f"{pprof}/debug/pprof/goroutine?debug=1", within=60, limit=1 << 30)
    t2 = time.perf_counter()
    sites = profile.site_values(
        profile.decode(heap, limit=1 << 30), report.HEAP_TYPES, max_frames=8
    )
    rep = report.build(
        heap=sites, heap_baseline=sites,
        goroutines=goroutines.parse(dump.decode(), max_frames=8),
        goroutines_baseline=None, baseline_time="bench", top=10, problems=[],
    )  # fmt: skip
    report.render_text(rep)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2, len(heap)


async def case(binary: Path, warm: int, workers: int, runs: int) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        str(binary), "-warm", str(warm), "-workers", str(workers),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await proc.stdout.readline()).decode().split()
        addr = {k: f"http://{v}" for k, _, v in (w.partition("=") for w in line)}
        async with aiohttp.ClientSession() as http:
            await asyncio.sleep(1.0)  # let the heap settle after warm-up
            stop = asyncio.Event()
            idle_task = asyncio.create_task(pings(http, f"{addr['app']}/ping", stop))
            await asyncio.sleep(2.0)
            stop.set()
            idle = await idle_task

            # CPU first, with nothing else asking the app for anything.
            cpu0 = cpu_seconds(proc.pid)
            heap_s, dump_s, decode_s, size = [], [], [], 0
            for _ in range(runs):
                t = await capture(http, addr["pprof"])
                heap_s.append(t[0])
                dump_s.append(t[1])
                decode_s.append(t[2])
                size = int(t[3])
            cpu = (cpu_seconds(proc.pid) - cpu0) / runs
            # Then the app's own latency while captures run back to back.
            stop = asyncio.Event()
            busy_task = asyncio.create_task(pings(http, f"{addr['app']}/ping", stop))
            for _ in range(runs):
                await capture(http, addr["pprof"])
            stop.set()
            busy = await busy_task
        return {
            "cpu_ms": cpu * 1000,
            "heap_ms": statistics.median(heap_s) * 1000,
            "heap_kib": size / 1024,
            "dump_ms": statistics.median(dump_s) * 1000,
            "decode_ms": statistics.median(decode_s) * 1000,
            "idle_p99_ms": p99(idle) * 1000,
            "busy_p99_ms": p99(busy) * 1000,
        }
    finally:
        proc.terminate()
        await proc.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        binary = build(Path(tmp))
        print(
            "| app | app CPU per capture | heap GET | heap profile | goroutine GET "
            "| sidecar decode + report | app /ping p99 idle -> during captures |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, (warm, workers) in CASES.items():
            r = await case(binary, warm, workers, args.runs)
            print(
                f"| {name} | {r['cpu_ms']:.0f} ms | {r['heap_ms']:.1f} ms "
                f"| {r['heap_kib']:.0f} KiB | {r['dump_ms']:.1f} ms | {r['decode_ms']:.1f} ms "
                f"| {r['idle_p99_ms']:.2f} -> {r['busy_p99_ms']:.2f} ms |"
            )


if __name__ == "__main__":
    asyncio.run(main())
