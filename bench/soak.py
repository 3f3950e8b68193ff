"""The soak behind ``bench/table.py --soak``: does the sidecar's RSS stay flat?

One sidecar scrapes every 100 ms an app (served here, on 127.0.0.1) whose body is Go's
real /debug/vars plus a ``sessions`` map exported with its keys as a label: one key enters
and the oldest leaves every second, so series are born and go stale all the time. A
webhook arrives every 2 s, firing or resolved in turn, for one of 50 pods, with
``action: cache_flush`` (the app answers its flush calls). The store keeps 1 minute
(``store.max_retention``), so after the warm-up (a quarter of the run, at least 2
minutes) every bounded structure is full and a rising RSS is a leak.

The RSS is sampled every 5 s; the slope is the least-squares fit over the samples after
the warm-up, in MiB per hour. Beyond ``TOLERANCE_MIB_PER_HOUR`` the soak exits 1.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bench_sidecar as bs

# The tests' Alertmanager payloads: the same shape the receiver's tests send.
sys.path.insert(0, str(bs.ROOT / "tests"))
from actions_support import alert, webhook

TOLERANCE_MIB_PER_HOUR = 2.0
"""A 1 MiB step of the allocator within a 20-minute run's 15-minute window reads as
4 MiB/h, so a real leak must show on top of that: 2 MiB/h over several steps, or 48 MiB
a day, is what a sidecar in every pod cannot afford."""
TOKEN = "soak-token"
LIVE_KEYS = 30
SAMPLE_EVERY_S = 5.0
WEBHOOK_EVERY_S = 2.0

GO_VARS = (bs.ROOT / "tests" / "fixtures" / "goapp" / "vars.json").read_bytes()


def _body(started: float) -> bytes:
    first = int(time.monotonic() - started)
    keys = ", ".join(f'"s-{k:08d}": {k % 97}' for k in range(first, first + LIVE_KEYS))
    return GO_VARS.replace(b'"requests":', b'"sessions": {' + keys.encode() + b'},\n"requests":')


def _app(started: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = _body(started)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # the sidecar's action calls
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _webhook(n: int) -> bytes:
    """The n-th delivery: firing, then resolved, for one of 50 pods, asking a cache flush."""
    status = "firing" if n % 2 == 0 else "resolved"
    pod = f"p{(n // 2) % 50}"
    return json.dumps(
        webhook(alert("SoakCacheGrowing", status, pod=pod, action="cache_flush"))
    ).encode()


def _post(url: str, body: bytes) -> int:
    req = urllib.request.Request(
        url,
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def run(minutes: float, tolerance: float) -> int:
    """Soak for ``minutes``; print the RSS samples' summary; 1 if the slope is too steep."""
    started = time.monotonic()
    app = _app(started)
    app_port = app.server_address[1]
    side_port = bs.port()
    statuses: dict[int, int] = {}
    samples: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        extra = "store:\n  max_retention: 1m\n"
        cfg = bs.config(tmp, app_port, side_port, interval="100ms", extra=extra)
        text = cfg.read_text().replace(
            "  timeout: 500ms\n",
            # cost_fraction: 100 ms it is, however much of it a scrape costs.
            "  timeout: 90ms\n  cost_fraction: 0.9\n"
            "  maps: [{path: sessions, labels: [session]}]\n",
        )
        text = text.replace("evaluation_interval: 100ms", "evaluation_interval: 1s")
        cfg.write_text(text)
        hidden = bs.hide_optional(tmp, bs.not_in_runtime_lock())
        side = bs.launch(cfg, env={**hidden, "LEAK_SIDECAR_TOKEN": TOKEN})
        try:
            bs.wait(f"http://127.0.0.1:{side_port}/readyz")
            t0 = time.monotonic()
            end = t0 + minutes * 60
            next_sample = next_hook = t0
            n = 0
            while time.monotonic() < end:
                now = time.monotonic()
                if now >= next_hook:
                    code = _post(f"http://127.0.0.1:{side_port}/alerts", _webhook(n))
                    statuses[code] = statuses.get(code, 0) + 1
                    n += 1
                    next_hook += WEBHOOK_EVERY_S
                if now >= next_sample:
                    samples.append((now - t0, bs.rss_mib(side.pid)))
                    next_sample += SAMPLE_EVERY_S
                time.sleep(0.1)
            scrapes = bs.scrapes_total(side_port)
        finally:
            bs.stop(side)
            app.shutdown()
    return _report(samples, minutes, tolerance, scrapes, statuses)


def _report(
    samples: list[tuple[float, float]],
    minutes: float,
    tolerance: float,
    scrapes: float,
    statuses: dict[int, int],
) -> int:
    warm = max(120.0, minutes * 60 / 4)
    steady = [(t, rss) for t, rss in samples if t >= warm]
    print(f"soak: {minutes:g} min, 100 ms scrapes ({scrapes:.0f} in all), churning series,")
    print(f"  webhooks every {WEBHOOK_EVERY_S:g} s (answers: {statuses})")
    print(f"  RSS: {samples[0][1]:.1f} MiB at start, {samples[-1][1]:.1f} MiB at the end, ")
    print(f"  {max(rss for _, rss in samples):.1f} MiB at most")
    if len(steady) < 3:
        print(f"  too short for a slope: the warm-up alone is {warm:.0f} s")
        return 1
    slope, _ = statistics.linear_regression([t for t, _ in steady], [r for _, r in steady])
    per_hour = slope * 3600
    verdict = "within" if per_hour <= tolerance else "BEYOND"
    print(
        f"  slope after the {warm:.0f} s warm-up: {per_hour:+.2f} MiB/h, {verdict} the "
        f"tolerance of {tolerance:g} MiB/h"
    )
    return 0 if per_hour <= tolerance else 1
