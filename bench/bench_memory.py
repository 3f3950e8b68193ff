"""Where the sidecar's memory goes: import cost per dependency and module, the store per
series, and the steady RSS of `leak-sidecar run` before and after the lazy imports.

    python bench/bench_memory.py [--seconds 30]

1. Imports: one fresh interpreter imports the run path's dependencies, then the sidecar's
   own modules, in order, and prints the VmRSS each one adds (what it loads first; an
   import's children that an earlier line already loaded are not counted twice).
2. Store: tracemalloc's bytes for a store of 100 series at 1,000 samples each.
3. Steady RSS: sidecars on one demo app at 1 s scrapes with the shipped pack, side by
   side, with only the runtime lock's packages importable (what the image holds): this
   checkout with the lazily loaded modules imported up front (the "before"), this
   checkout as it is; for comparison, as it is in a test install, where structlog also
   finds and loads rich; and one sidecar per process-level knob a container can set
   (``KNOBS``: glibc's arenas and trim threshold, Python's allocator, the default
   executor's size, -OO, and `run`'s own malloc_trim after
   start), each differing from "this checkout" in that one thing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_sidecar as bs  # a sibling script, not a package

from sidecar.store import Store

DEPENDENCIES = (
    "asyncio",
    "aiohttp",
    "aiohttp.web",
    "structlog",
    "prometheus_client",
    "msgspec",
    "orjson",
    "tenacity",
    "yaml",
    "promql_parser",
)
SIDECAR = (
    "sidecar.core.config",
    "sidecar.cli",
    "sidecar.store",
    "sidecar.scrape.scraper",
    "sidecar.scrape.export",
    "sidecar.rules.promql",
    "sidecar.rules.templates.expand",
    "sidecar.rules.engine",
    "sidecar.actions.path",
    "sidecar.evidence.capture",
    "sidecar.web.server",
    "sidecar.web.status",
    "sidecar.supervisor",
)
LAZY = (
    # Modules `run` loads only when a command or a capture needs them; the "before" row
    # imports them up front, as the run path did.
    "google.protobuf.descriptor_pb2",
    "google.protobuf.descriptor_pool",
    "google.protobuf.message_factory",
    "re2",
)
_CHILD = """
import importlib, sys
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
print(f'interpreter\\t{rss():.1f}')
for name in sys.argv[1:]:
    before = rss()
    importlib.import_module(name)
    print(f'{name}\\t{rss() - before:.1f}')
print(f'total\\t{rss():.1f}')
print(f'modules\\t{len(sys.modules)}')
"""


def imports(env: dict[str, str]) -> list[tuple[str, str]]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, *DEPENDENCIES, *SIDECAR, *LAZY],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    ).stdout
    return [tuple(line.split("\t", 1)) for line in out.splitlines()]  # type: ignore[misc]


def store_bytes_per_series(series: int = 100, samples: int = 1000) -> float:
    store = Store(retention_ms=samples * 1000 + 1, max_series=series + 1)
    labels = [(("__name__", f"m{i}"), ("job", "app")) for i in range(series)]
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    for step in range(samples):
        store.ingest(
            1_700_000_000_000 + step * 1000, {ls: float(step) for ls in labels}, origin="b"
        )
    used = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    return used / series


def store_series(side_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{side_port}/metrics") as r:
        for line in r.read().decode().splitlines():
            if line.startswith("leak_sidecar_store_series "):
                return float(line.split()[1])
    return float("nan")


_HOOKS = {
    # Preloaded by some variants (``bs.launch(preload=...)``) to change one thing at start.
    "_bench_no_trim": (
        "import sidecar.supervisor as s\n"
        "s._release_freed_heap = lambda: None  # as before the trim after start\n"
    ),
    "_bench_one_thread": (
        "import asyncio.base_events as be, concurrent.futures as cf\n"
        "_orig = be.BaseEventLoop.run_in_executor\n"
        "def _bounded(self, executor, func, *args):\n"
        "    if executor is None and self._default_executor is None:\n"
        "        self.set_default_executor(cf.ThreadPoolExecutor(1, 'asyncio'))\n"
        "    return _orig(self, executor, func, *args)\n"
        "be.BaseEventLoop.run_in_executor = _bounded\n"
    ),
}

KNOBS: tuple[tuple[str, tuple[str, ...], dict[str, str]], ...] = (
    # (variant, modules preloaded, environment): each differs from "this checkout" in one
    # thing a sidecar container can set for its process.
    ("knob: no malloc_trim after start (nor ctypes)", ("_bench_no_trim",), {}),
    ("knob: MALLOC_ARENA_MAX=2", (), {"MALLOC_ARENA_MAX": "2"}),
    ("knob: MALLOC_TRIM_THRESHOLD_=65536", (), {"MALLOC_TRIM_THRESHOLD_": "65536"}),
    ("knob: PYTHONMALLOC=malloc", (), {"PYTHONMALLOC": "malloc"}),
    (
        "knob: PYTHONMALLOC=malloc, MALLOC_ARENA_MAX=2",
        (),
        {"PYTHONMALLOC": "malloc", "MALLOC_ARENA_MAX": "2"},
    ),
    ("knob: default executor bounded to 1 thread", ("_bench_one_thread",), {}),
    ("knob: PYTHONOPTIMIZE=2 (no asserts, no docstrings)", (), {"PYTHONOPTIMIZE": "2"}),
)


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def steady(seconds: float) -> list[tuple[str, float, float, int]]:
    """(variant, RSS after start, RSS after ``seconds``, threads) for every sidecar."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        app_port = bs.port()
        app = bs.start_demo_app(app_port)
        hidden = bs.hide_optional(tmp, bs.not_in_runtime_lock())
        stubs = Path(hidden["PYTHONPATH"].split(os.pathsep)[0])
        for name, code in _HOOKS.items():
            (stubs / f"{name}.py").write_text(code)
        variants = [
            ("before: the lazy modules imported up front", LAZY, hidden),
            ("after: this checkout", (), hidden),
            ("after, with the test install's extra packages importable", (), {}),
            *((label, pre, {**hidden, **env}) for label, pre, env in KNOBS),
        ]
        procs = []
        try:
            bs.wait(f"http://127.0.0.1:{app_port}/debug/vars")
            for label, preload, env in variants:
                side_port = bs.port()
                cfg = bs.config(tmp, app_port, side_port)
                procs.append((label, side_port, bs.launch(cfg, preload=preload, env=env)))
            for _, side_port, _ in procs:
                bs.wait(f"http://127.0.0.1:{side_port}/readyz", timeout=60)
            time.sleep(2)
            first = {label: bs.rss_mib(p.pid) for label, _, p in procs}
            time.sleep(seconds)
            series = store_series(procs[0][1])
            rows = [
                (label, first[label], bs.rss_mib(p.pid), threads(p.pid)) for label, _, p in procs
            ]
        finally:
            bs.stop(*(p for _, _, p in procs), app)
    print(f"store series (demo app, after {seconds:.0f}s): {series:.0f}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="steady window per sidecar")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hidden = bs.hide_optional(Path(tmp), bs.not_in_runtime_lock())
        print("## RSS each import adds (MiB), runtime lock's packages only")
        print("| import | MiB |\n| --- | ---: |")
        for name, mib in imports(hidden):
            print(f"| {name} | {mib} |")
    per_series = store_bytes_per_series()
    print(f"\n## Store: {per_series / 1000:.1f} bytes per sample, {per_series / 1024:.1f} KiB per")
    print("series of 1,000 samples (2,100 at 1 s for the pack's 30m + 5m retention)")
    print(f"\n## Steady RSS, shipped pack, 1 s scrapes, {args.seconds:.0f}s window, side by side")
    rows = steady(args.seconds)
    print("| sidecar | RSS after start | RSS after the window | threads |")
    print("| --- | ---: | ---: | ---: |")
    for label, rss0, rss1, n in rows:
        print(f"| {label} | {rss0:.1f} MiB | {rss1:.1f} MiB | {n} |")


if __name__ == "__main__":
    main()
