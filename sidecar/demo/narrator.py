"""``leak-sidecar demo``: a leaking app and the sidecar on loopback, narrated.

Nothing is staged. The demo starts the demo app and a real sidecar (the shipped rule
pack, the real receiver, breaker, journal and actuator) on free loopback ports, switches
the leak on over HTTP and then only *watches*: every line it prints comes from an HTTP
answer (the app's ``/debug/vars`` and ``/demo/calls``, the sidecar's ``/v1/alerts`` and
``/v1/circuit``). When the app has received the break, it switches the leak off, as
the on-call engineer would, and waits for the sidecar to reset the circuit on its own.

The story is the one the pack exists for: a new pod whose heap leaks fast enough to
fill its memory limit within about 17 minutes, before any trend has the history to
predict it. The cache flush buys a few minutes, the direct memory rule (OOMImminent)
breaks the circuit with the heap in use under 95% of the limit, the next flush frees
the keys leaked since the first, and the circuit closes. The narrator follows the heap
in use against the limit and says how close it came.

Time is compressed, not the rules: the app and the sidecar run on a clock ``speed``
times faster than the wall (1 s on the wall is 1 min for them at the default), so the
rule pack runs unmodified, ``for:`` clauses and windows included, and what the demo
shows is what the shipped files do.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from pydantic import SecretStr

from sidecar.core import logs
from sidecar.core.config import Config
from sidecar.demo.app import DemoApp, serve
from sidecar.supervisor import Sidecar

__all__ = ["DEFAULT_SPEED", "CompressedClock", "DemoResult", "main", "run_demo"]

DEFAULT_SPEED = 60.0
_POLL = 0.2  # wall seconds between observations
_REPORT_EVERY = 120.0  # app seconds between status lines
_MIB = 1024 * 1024
# 3 GiB: the leak below fills it in about 17 minutes from the pod's start, so no trend
# has 15 minutes of history in time and the direct rule must act; at this size the sawtooth
# (2 minutes of request garbage, 8% of the limit) leaves the break well under 95%.
_MEMORY_LIMIT = 3 * 1024 * _MIB
# The leak: keys fast enough to trip CacheKeysGrowing first (a flush frees them, and the
# second flush is what lets the heap fall after the break); heap that no flush frees; a
# pool that leaks too slowly to fill before memory runs out.
_LEAK = {
    "on": True,
    "keys_per_second": 2000,
    "heap_bytes_per_second": 2 * _MIB,
    "pool_per_second": 0.02,
}


@dataclass
class DemoResult:
    """What the app received, by path, and how long the story took."""

    calls: dict[str, int] = field(default_factory=dict)
    app_s: float = 0.0
    complete: bool = False
    #: The heap in use over the memory limit: its highest reading, and at the break.
    heap_peak: float = 0.0
    heap_at_break: float | None = None


class CompressedClock:
    """Wall and monotonic clocks ``speed`` times faster than real time, and their sleep."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def elapsed(self) -> float:
        return (time.monotonic() - self._mono0) * self.speed

    def monotonic(self) -> float:
        return self._mono0 + self.elapsed()

    def wall(self) -> float:
        return self._wall0 + self.elapsed()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)


class _Narrator:
    def __init__(self, out: TextIO, clock: CompressedClock) -> None:
        self._out = out
        self._clock = clock
        self._real0 = time.monotonic()

    def say(self, text: str) -> None:
        real = time.monotonic() - self._real0
        app = int(self._clock.elapsed())
        print(f"[{real:5.1f}s | app t+{app // 60:2d}m{app % 60:02d}s] {text}", file=self._out)
        self._out.flush()


def _config(app_url: str, rules: Path, state_dir: Path) -> Config:
    return Config.model_validate(
        {
            "app": {"base_url": app_url, "memory_limit_bytes": _MEMORY_LIMIT},
            # A scrape's real cost is multiplied by the compression on the sidecar's clock:
            # judged there, every scrape would look costly and stretch the interval.
            "scrape": {"maps": [{"path": "caches", "labels": ["cache"]}], "cost_fraction": 1},
            "rules": {"files": [str(rules / "*.yml")]},
            "breaker": {"min_open": "1m"},
            # The demo app is Python: it serves no net/http/pprof to capture evidence from.
            "evidence": {"enabled": False},
            "server": {"listen": "127.0.0.1:0"},
            "state_dir": str(state_dir),
        }
    )


async def run_demo(
    out: TextIO,
    *,
    speed: float = DEFAULT_SPEED,
    deadline_s: float = 85.0,
) -> DemoResult:
    """Run the whole story; returns what happened (``complete`` when flush, break, reset)."""
    clock = CompressedClock(speed)
    say = _Narrator(out, clock).say
    token = secrets.token_urlsafe(24)
    result = DemoResult()
    demo = DemoApp(clock=clock.monotonic, wall=clock.wall, sleep=clock.sleep)
    with (
        tempfile.TemporaryDirectory(prefix="leak-sidecar-demo-") as tmp,
        as_file(files("sidecar.pack")) as pack,
    ):
        runner = await serve("127.0.0.1", 0, demo)
        app_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        cfg = _config(app_url, Path(pack), Path(tmp))
        # A real token: the sidecar's POST routes are as locked as in production.
        cfg = cfg.model_copy(update={"token": SecretStr(token)})
        sidecar = Sidecar(cfg, clock=clock.wall, monotonic=clock.monotonic, sleep=clock.sleep)
        stop = asyncio.Event()
        task = asyncio.create_task(sidecar.run(stop), name="sidecar")
        try:
            async with asyncio.timeout(10):
                await sidecar.started.wait()
            say(
                f"time runs {speed:g}x faster here: 1 second of yours is "
                f"{speed:g} seconds for the app and the sidecar"
            )
            say(f"demo app (a Go order service, simulated) listening on {app_url}")
            names = [r.name for g in sidecar.groups for r in g.rules]
            say(
                f"sidecar listening on http://127.0.0.1:{sidecar.port}, "
                f"{len(names)} rules from the shipped pack: {', '.join(names)}"
            )
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
                watcher = _Watcher(http, app_url, f"http://127.0.0.1:{sidecar.port}", say, clock)
                await watcher.observe()
                async with http.post(f"{app_url}/demo/leak", json=_LEAK) as resp:
                    resp.raise_for_status()
                say(
                    f"leak switched on: +{_LEAK['keys_per_second']} cache keys/s, "
                    f"+{_LEAK['heap_bytes_per_second'] / _MIB:g} MiB heap/s, "
                    f"+{_LEAK['pool_per_second']} pool connections/s"
                )
                try:
                    async with asyncio.timeout(deadline_s):
                        await watcher.until_story_told()
                        result.complete = True
                except TimeoutError:
                    say(f"the story did not complete within {deadline_s:g}s; stopping")
                result.calls = dict(watcher.counts)
                result.heap_peak = watcher.heap_peak
                result.heap_at_break = watcher.heap_at_break
        finally:
            stop.set()
            async with asyncio.timeout(30):
                await task
            await runner.cleanup()
    result.app_s = clock.elapsed()
    return result


class _Watcher:
    """Observes the app and the sidecar over HTTP and narrates each change once."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        app_url: str,
        sidecar_url: str,
        say: Callable[[str], None],
        clock: CompressedClock,
    ) -> None:
        self._http = http
        self._app = app_url
        self._sidecar = sidecar_url
        self._say = say
        self._clock = clock
        self._alerts: dict[str, str] = {}
        self._circuit = "closed"
        self._seen_calls = 0
        self.counts: dict[str, int] = {}
        self._next_report = 0.0
        self._leak_on = True
        self._heap = 0.0
        self.heap_peak = 0.0
        self.heap_at_break: float | None = None

    async def _get(self, url: str) -> Any:
        async with self._http.get(url) as resp:
            resp.raise_for_status()
            return await resp.json(content_type=None)

    async def observe(self) -> None:
        """One round of observations, narrating what changed."""
        doc = await self._get(f"{self._app}/debug/vars")
        self._heap = doc["memstats"]["HeapInuse"] / _MEMORY_LIMIT
        self.heap_peak = max(self.heap_peak, self._heap)
        if self._clock.elapsed() >= self._next_report:
            self._next_report = self._clock.elapsed() + _REPORT_EVERY
            heap = doc["memstats"]["HeapInuse"] / _MIB
            self._say(
                f"app: {doc['cache_keys_total']:,} cache keys, heap in use {heap:,.0f} MiB "
                f"({self._heap:.0%} of its {_MEMORY_LIMIT / _MIB:,.0f} MiB limit), "
                f"pool {doc['conn_pool_active']}/{doc['conn_pool_max']}"
            )
        alerts = (await self._get(f"{self._sidecar}/v1/alerts"))["data"]["alerts"]
        now = {a["labels"]["alertname"]: a["state"] for a in alerts}
        for name, state in sorted(now.items()):
            if self._alerts.get(name) != state:
                value = next(a["value"] for a in alerts if a["labels"]["alertname"] == name)
                self._say(f"sidecar: alert {name} is {state} (value {float(value):.4g})")
        for name in sorted(self._alerts.keys() - now.keys()):
            self._say(f"sidecar: alert {name} resolved")
        self._alerts = now
        calls = (await self._get(f"{self._app}/demo/calls"))["calls"]
        for call in calls[self._seen_calls :]:
            self.counts[call["path"]] = self.counts.get(call["path"], 0) + 1
            body = call["body"] or {}
            self._say(
                f"app received {call['method']} {call['path']} "
                f"(Idempotency-Key {str(call['idempotency_key'])[:12]}..., "
                f"source {body.get('source')}, reason: {body.get('reason')})"
            )
            if call["path"] == "/v1/circuit/break" and self.heap_at_break is None:
                self.heap_at_break = self._heap
                self._say(
                    f"the circuit broke with the heap in use at {self._heap:.0%} of the memory "
                    "limit: the leak is stopped before the kernel OOM-kills the app at 100%"
                )
        self._seen_calls = len(calls)
        circuit = await self._get(f"{self._sidecar}/v1/circuit")
        if circuit["state"] != self._circuit:
            self._circuit = circuit["state"]
            self._say(f"sidecar: circuit {circuit['state']} ({circuit['reason']})")

    async def until_story_told(self) -> None:
        """Watch until the app got a flush, a break and then a reset."""
        while self.counts.get("/v1/circuit/reset", 0) == 0:
            await self.observe()
            if self._leak_on and self.counts.get("/v1/circuit/break"):
                async with self._http.post(f"{self._app}/demo/leak", json={"on": False}) as r:
                    r.raise_for_status()
                self._leak_on = False
                self._say("leak switched off (the on-call engineer fixed the leaking code path)")
            await asyncio.sleep(_POLL)
        await self.observe()


def main(speed: float = DEFAULT_SPEED, out: TextIO | None = None) -> int:
    """``leak-sidecar demo``: 0 when the story completed (flush, break, reset), else 1."""
    stream = out if out is not None else sys.stdout
    # The narration is the output; the sidecar's own log lines would only drown it.
    logs.configure("json", "error", io.StringIO())
    result = asyncio.run(run_demo(stream, speed=speed))
    flushes = result.calls.get("/v1/cache/flush", 0)
    breaks = result.calls.get("/v1/circuit/break", 0)
    resets = result.calls.get("/v1/circuit/reset", 0)
    app_min = result.app_s / 60
    if result.heap_at_break is not None:
        verdict = (
            "the kernel never had to kill the app"
            if result.heap_peak < 1
            else "it crossed the limit: the kernel would have killed the app"
        )
        print(
            f"memory: the heap in use peaked at {result.heap_peak:.0%} of the limit and the "
            f"circuit broke at {result.heap_at_break:.0%}; {verdict}",
            file=stream,
        )
    print(
        f"summary: the app received {flushes} flush{'' if flushes == 1 else 'es'}, "
        f"{breaks} break and {resets} reset "
        f"in {app_min:.0f} minutes of app time ({result.app_s / speed:.1f}s of yours); "
        "every line above was observed over HTTP",
        file=stream,
    )
    # The story: a flush, the break before the limit, a second flush that frees the keys
    # leaked since the first, then the reset.
    ok = (
        result.complete
        and (flushes, breaks, resets) == (2, 1, 1)
        and result.heap_at_break is not None
        and result.heap_peak < 1
    )
    return 0 if ok else 1
