"""The whole sidecar's footprint: RSS and CPU while it scrapes the demo app and runs the pack.

Starts `leak-sidecar demo-app` and `leak-sidecar run` (the shipped rule pack, 1 s scrapes
and evaluations, i.e. 15 times the default load) as separate processes on loopback,
lets them run, and prints the sidecar's resident memory and CPU time from /proc.

    python bench/bench_sidecar.py [--seconds 60]

The helpers here (``launch``, ``rss_mib``, ``cpu_s``) also serve bench_memory.py and
table.py, which start sidecars the same way.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

OPTIONAL = ("rich", "colorama", "better_exceptions")
"""What structlog imports when it is installed. None is in the runtime lock (the image
has none); a test install may have rich (import-linter needs it), so ``hide_optional``
makes a sidecar see the image's set of packages."""


def port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout:g}s")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def not_in_runtime_lock(names: Sequence[str] = OPTIONAL) -> list[str]:
    """Of ``names``, those the runtime lock (what the image installs) does not pin."""
    lock = (ROOT / "requirements" / "runtime.txt").read_text().lower()
    pinned = set(re.findall(r"^([a-z0-9_.-]+)==", lock, re.MULTILINE))
    return [n for n in names if n.replace("_", "-") not in pinned]


def hide_optional(tmp: Path, names: Sequence[str]) -> dict[str, str]:
    """Environment under which ``names`` cannot be imported, as where they are absent."""
    stubs = tmp / "absent"
    for name in names:
        (stubs / name).mkdir(parents=True, exist_ok=True)
        (stubs / name / "__init__.py").write_text(
            f"raise ImportError('{name} is not in the runtime lock')\n"
        )
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(stubs), os.environ.get("PYTHONPATH")]))}


def config(
    tmp: Path, app_port: int, side_port: int, *, interval: str = "1s", extra: str = ""
) -> Path:
    """A sidecar config: the shipped pack, scrapes and evaluations every ``interval``."""
    cfg = tmp / f"sidecar-{side_port}.yaml"
    cfg.write_text(
        f"app:\n  base_url: http://127.0.0.1:{app_port}\n"
        "  memory_limit_bytes: 2147483648\n"
        f"scrape:\n  interval: {interval}\n  timeout: 500ms\n"
        f"rules:\n  files: [{ROOT / 'rules' / '*.yml'}]\n  evaluation_interval: {interval}\n"
        f"server:\n  listen: 127.0.0.1:{side_port}\n"
        f"state_dir: {tmp}/state-{side_port}\nlog:\n  level: warning\n{extra}"
    )
    return cfg


def launch(
    cfg: Path, *, preload: Sequence[str] = (), env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``leak-sidecar run --config cfg``, after importing ``preload`` (to show their cost)."""
    code = (
        "import runpy, sys\n"
        f"for m in {list(preload)!r}: __import__(m)\n"
        f"sys.argv = ['leak-sidecar', 'run', '--config', {str(cfg)!r}]\n"
        "runpy.run_module('sidecar', run_name='__main__', alter_sys=True)\n"
    )
    # Its log lines go to stderr: stdout carries the benchmarks' figures.
    return subprocess.Popen(
        [sys.executable, "-c", code], env={**os.environ, **(env or {})}, stdout=sys.stderr
    )


def start_demo_app(app_port: int) -> subprocess.Popen[bytes]:
    cli = [sys.executable, "-m", "sidecar"]
    return subprocess.Popen(
        [*cli, "demo-app", "--listen", f"127.0.0.1:{app_port}", "--leak"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(20)


def scrapes_total(side_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{side_port}/metrics") as r:
        metrics = r.read().decode()
    return next(
        float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("leak_sidecar_scrapes_total ")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    app_port, side_port = port(), port()
    with tempfile.TemporaryDirectory() as tmp:
        app = start_demo_app(app_port)
        side = launch(config(Path(tmp), app_port, side_port))
        try:
            wait(f"http://127.0.0.1:{app_port}/debug/vars")
            wait(f"http://127.0.0.1:{side_port}/readyz")
            time.sleep(2)
            rss0, cpu0, t0 = rss_mib(side.pid), cpu_s(side.pid), time.monotonic()
            time.sleep(args.seconds)
            rss1, cpu1, t1 = rss_mib(side.pid), cpu_s(side.pid), time.monotonic()
            scrapes = scrapes_total(side_port)
        finally:
            stop(side, app)
    cpu = cpu1 - cpu0
    wall = t1 - t0
    print(f"window: {wall:.0f}s, 1 s scrapes and evaluations, shipped pack, demo app leaking")
    print(f"RSS after start: {rss0:.1f} MiB; after the window: {rss1:.1f} MiB")
    print(f"CPU: {cpu:.2f}s in {wall:.0f}s = {100 * cpu / wall:.1f}% of a core")
    print(f"per scrape+evaluation cycle: {1000 * cpu / wall:.1f} ms of CPU")
    print(f"at the default 15 s interval: ~{100 * cpu / wall / 15:.2f}% of a core")
    print(f"scrapes in total: {scrapes:.0f}")


if __name__ == "__main__":
    main()
