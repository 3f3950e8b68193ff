"""How long one evaluation cycle of 20 leak rules takes in the embedded PromQL evaluator.

Two workloads, 20 metrics x 8 series = 160 series, the rules a mix of rate, increase,
avg_over_time, max_over_time, deriv and predict_linear over 5-15 minute windows:

* 1 hour of 5 s samples (the default scrape interval);
* 160 series of 1 s samples (the heaviest setting; 20 minutes kept).

Run: ``python bench/bench_promql.py [--cycles N] [--prometheus]``. Prints milliseconds
per cycle (median and best of N) and the share of each kind of rule. With
``--prometheus`` the same rules and data also go to a real Prometheus on 127.0.0.1
(backfilled with ``promtool tsdb create-blocks-from openmetrics``), and its
``prometheus_rule_group_last_duration_seconds`` is printed beside ours timed in the same
seconds (``side_by_side``): back-to-back figures from another half minute differ by
more than the gap between the two on a shared machine.
"""

from __future__ import annotations

import argparse
import math
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from sidecar.core.model import LabelSet
from sidecar.rules.promql import Query, compile_expr
from sidecar.store import Store

SERIES_PER_METRIC = 8

RULES: list[tuple[str, str]] = [
    ("cache_keys_total", "rate(cache_keys_total[10m]) > 500"),
    ("cache_evictions_total", "increase(cache_evictions_total[15m]) > 1000"),
    ("conn_pool_active", "avg_over_time(conn_pool_active[5m]) > 95"),
    ("heap_inuse_bytes", "deriv(heap_inuse_bytes[10m]) > 1e6"),
    ("heap_alloc_bytes", "predict_linear(heap_alloc_bytes[15m], 3600) > 2e9"),
    ("goroutines", "deriv(goroutines[10m]) > 1"),
    ("open_fds", "predict_linear(open_fds[10m], 1800) > 10000"),
    ("requests_total", "rate(requests_total[5m]) > 1000"),
    ("sessions_active", "avg_over_time(sessions_active[10m]) > 5000"),
    ("queue_depth", "max_over_time(queue_depth[5m]) > 900"),
    ("map_entries", "deriv(map_entries[15m]) > 50"),
    ("buffer_bytes", "predict_linear(buffer_bytes[15m], 7200) > 1e10"),
    ("gc_pause_total", "rate(gc_pause_total[10m]) > 0.5"),
    ("alloc_total", "increase(alloc_total[10m]) > 1e9"),
    ("conn_waiting", "avg_over_time(conn_waiting[5m]) > 10"),
    ("stack_bytes", "deriv(stack_bytes[5m]) > 1e5"),
    ("cache_bytes", "predict_linear(cache_bytes[10m], 3600) > 4e9"),
    ("errors_total", "rate(errors_total[5m]) > 5"),
    ("pool_idle", "avg_over_time(pool_idle[15m]) < 1"),
    ("threads", "max_over_time(threads[10m]) > 500"),
]


WORKLOADS = [("1h of 5s samples", 5_000, 720), ("20m of 1s samples", 1_000, 1_200)]
"""(label, step in ms, samples per series)."""


def _value(name: str, series: int, step: int) -> float:
    """A deterministic, leak-like value: counters grow, gauges drift with noise."""
    base = (series + 1) * 100.0
    if name.endswith("_total"):
        return base + step * (3.0 + series) + (step % 7)
    return base + step * 0.5 * (series % 3) + 10.0 * math.sin(step / 13.0 + series)


def build_store(step_ms: int, steps: int, t0: int = 1_700_000_000_000) -> Store:
    """A store with 20 metrics x 8 series, ``steps`` samples each, ``step_ms`` apart."""
    store = Store(retention_ms=steps * step_ms + 1, max_series=10_000)
    for step in range(steps):
        samples: dict[LabelSet, float] = {}
        for name, _ in RULES:
            for s in range(SERIES_PER_METRIC):
                labels = (("__name__", name), ("instance", f"pod-{s}"), ("job", "app"))
                samples[labels] = _value(name, s, step)
        store.ingest(t0 + step * step_ms, samples, origin="bench")
    return store


def cycle(queries: list[Query], store: Store, t: int) -> int:
    """Evaluate every rule once; return how many samples came out."""
    n = 0
    for q in queries:
        out = q.evaluate(store, t)
        n += len(out) if isinstance(out, list) else 1
    return n


class Cycles:
    """One workload's store and compiled rules, and the time of each cycle run so far."""

    def __init__(self, step_ms: int, steps: int) -> None:
        self.step_ms = step_ms
        self.store = build_store(step_ms, steps)
        self.queries = [compile_expr(expr) for _, expr in RULES]
        self.t_end = 1_700_000_000_000 + (steps - 1) * step_ms
        # Warm the selector caches, as a running engine has them.
        cycle(self.queries, self.store, self.t_end)
        self.times: list[float] = []

    def tick(self) -> None:
        """Time one cycle, each at the next evaluation time of a sliding window."""
        t = self.t_end - (len(self.times) % 20) * self.step_ms
        start = time.perf_counter()
        cycle(self.queries, self.store, t)
        self.times.append((time.perf_counter() - start) * 1000)

    def summary(self) -> tuple[float, float]:
        """Median and best, in ms."""
        return statistics.median(self.times), min(self.times)


def measure(label: str, step_ms: int, steps: int, cycles: int) -> tuple[float, float]:
    """Print the per-cycle time for one workload, cycles back to back; return the median
    and the best, in ms."""
    run = Cycles(step_ms, steps)
    for _ in range(cycles):
        run.tick()
    median, best = run.summary()
    print(
        f"{label}: {len(run.queries)} rules, {len(RULES) * SERIES_PER_METRIC} series, "
        f"median {median:.2f} ms, best {best:.2f} ms per cycle"
    )
    per_kind: dict[str, float] = {}
    for q in run.queries:
        kind = q.text.split("(")[0]
        start = time.perf_counter()
        for _ in range(5):
            q.evaluate(run.store, run.t_end)
        per_kind[kind] = per_kind.get(kind, 0.0) + (time.perf_counter() - start) * 200
    shares = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per_kind.items(), key=lambda kv: -kv[1]))
    print(f"  ms per cycle by function: {shares}")
    return median, best


def _openmetrics(step_ms: int, steps: int, t0: int) -> str:
    lines = []
    for name, _ in RULES:
        lines.append(f"# TYPE {name} gauge")
        for s in range(SERIES_PER_METRIC):
            for step in range(steps):
                t = (t0 + step * step_ms) / 1000
                v = _value(name, s, step)
                lines.append(f'{name}{{instance="pod-{s}",job="app"}} {v!r} {t:.3f}')
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _group_duration(port: int) -> float | None:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("prometheus_rule_group_last_duration_seconds{"):
                return float(line.rsplit(" ", 1)[1])
    return None


def measure_prometheus(
    label: str, step_ms: int, steps: int, cycles: int, alongside: Cycles | None = None
) -> tuple[float, float] | None:
    """Backfill the workload ending now, run Prometheus with the rules at a 1s interval,
    and print (and return) the median and the best of its last-duration gauge over
    ``cycles`` evaluations, in ms.

    With ``alongside``, one of its cycles is timed at each read of the gauge (twice a
    second), so that both are measured over the same seconds of a shared machine, whose
    speed drifts from one half minute to the next by more than the gap being measured;
    on two cores they do not compete (Prometheus evaluates about 1% of each second).
    """
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        t0 = (int(time.time()) - 2) * 1000 - (steps - 1) * step_ms
        (d / "data.om").write_text(_openmetrics(step_ms, steps, t0))
        subprocess.run(
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q", "data.om", "tsdb"],
            cwd=d,
            check=True,
        )
        rules = "\n".join(
            f"      - alert: Bench{i}\n        expr: '{expr}'" for i, (_, expr) in enumerate(RULES)
        )
        (d / "rules.yml").write_text(f"groups:\n  - name: bench\n    rules:\n{rules}\n")
        (d / "prometheus.yml").write_text(
            "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n"
        )
        port = _free_port()
        proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={d / 'prometheus.yml'}",
                f"--storage.tsdb.path={d / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            seen: list[float] = []
            deadline = time.monotonic() + cycles + 60
            last = None
            while len(seen) < cycles and time.monotonic() < deadline:
                time.sleep(0.5)
                if alongside is not None and seen:
                    alongside.tick()
                try:
                    value = _group_duration(port)
                except OSError:
                    continue
                if value and value != last:  # 0 until the first evaluation
                    seen.append(value * 1000)
                    last = value
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    if not seen:
        print(f"{label}: Prometheus reported no rule evaluation")
        return None
    print(
        f"{label}: Prometheus {len(seen)} evaluations, "
        f"median {statistics.median(seen):.2f} ms, best {min(seen):.2f} ms per cycle"
    )
    return statistics.median(seen), min(seen)


def main() -> None:
    """Run both workloads."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20, help="cycles to time per workload")
    parser.add_argument(
        "--prometheus", action="store_true", help="also time a real Prometheus on the same rules"
    )
    args = parser.parse_args()
    for label, step_ms, steps in WORKLOADS:
        measure(label, step_ms, steps, args.cycles)
        if args.prometheus:
            side_by_side(label, step_ms, steps, args.cycles)


def side_by_side(
    label: str, step_ms: int, steps: int, cycles: int
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Ours and Prometheus's (median, best) in ms, over the same seconds; printed."""
    ours = Cycles(step_ms, steps)
    peer = measure_prometheus(label, step_ms, steps, cycles, alongside=ours)
    if peer is None or not ours.times:
        return None
    median, best = ours.summary()
    print(
        f"{label}: ours in the same seconds, {len(ours.times)} cycles, "
        f"median {median:.2f} ms, best {best:.2f} ms per cycle"
    )
    return (median, best), peer


if __name__ == "__main__":
    main()
