"""The whole sidecar's footprint: RSS and CPU while it scrapes the demo app and runs the pack.

Starts `leak-sidecar demo-app` and `leak-sidecar run` (the shipped rule pack, 1 s scrapes
and evaluations, i.e. 15 times the default load) as separate processes on loopback,
lets them run, and prints the sidecar's resident memory and CPU time from /proc.

    python bench/bench_sidecar.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout:g}s")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    app_port, side_port = _port(), _port()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "sidecar.yaml"
        cfg.write_text(
            f"app:\n  base_url: http://127.0.0.1:{app_port}\n"
            "  memory_limit_bytes: 2147483648\n"
            "scrape:\n  interval: 1s\n  timeout: 500ms\n"
            f"rules:\n  files: [{ROOT / 'rules' / '*.yml'}]\n  evaluation_interval: 1s\n"
            f"server:\n  listen: 127.0.0.1:{side_port}\n"
            f"state_dir: {tmp}/state\nlog:\n  level: warning\n"
        )
        cli = [sys.executable, "-m", "sidecar"]
        app = subprocess.Popen([*cli, "demo-app", "--listen", f"127.0.0.1:{app_port}", "--leak"])
        side = subprocess.Popen([*cli, "run", "--config", str(cfg)])
        try:
            _wait(f"http://127.0.0.1:{app_port}/debug/vars")
            _wait(f"http://127.0.0.1:{side_port}/readyz")
            time.sleep(2)
            rss0, cpu0, t0 = _rss_mib(side.pid), _cpu_s(side.pid), time.monotonic()
            time.sleep(args.seconds)
            rss1, cpu1, t1 = _rss_mib(side.pid), _cpu_s(side.pid), time.monotonic()
            with urllib.request.urlopen(f"http://127.0.0.1:{side_port}/metrics") as r:
                metrics = r.read().decode()
        finally:
            for p in (side, app):
                p.send_signal(signal.SIGTERM)
            for p in (side, app):
                p.wait(20)
    scrapes = next(
        float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("leak_sidecar_scrapes_total ")
    )
    cpu = cpu1 - cpu0
    wall = t1 - t0
    print(f"window: {wall:.0f}s, 1 s scrapes and evaluations, 6 rules, demo app leaking")
    print(f"RSS after start: {rss0:.1f} MiB; after the window: {rss1:.1f} MiB")
    print(f"CPU: {cpu:.2f}s in {wall:.0f}s = {100 * cpu / wall:.1f}% of a core")
    print(f"per scrape+evaluation cycle: {1000 * cpu / wall:.1f} ms of CPU")
    print(f"at the default 15 s interval: ~{100 * cpu / wall / 15:.2f}% of a core")
    print(f"scrapes in total: {scrapes:.0f}")


if __name__ == "__main__":
    main()
