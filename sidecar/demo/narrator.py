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

Every story it starts ends: each alert is followed until it resolves (whether it fired,
and for how long) or the demo says where it stands as it stops watching. It ends with
where to look next; with ``--keep`` the app and the sidecar stay up after the story, the
status page's URL and working curl commands are printed, and SIGTERM or Ctrl-C stops
both cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import secrets
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.resources import as_file, files
from pathlib import Path
from typing import TextIO

import aiohttp
import msgspec

from sidecar.core import logs
from sidecar.core.config import Config
from sidecar.core.config_fields import Secret
from sidecar.core.durations import format_duration
from sidecar.core.loops import wait_any
from sidecar.demo.app import DemoApp, serve
from sidecar.demo.watch import Watcher
from sidecar.supervisor import Sidecar
from sidecar.web.units import format_bytes, format_percent, si

__all__ = [
    "DEFAULT_SPEED",
    "NEXT_STEPS",
    "CompressedClock",
    "DemoResult",
    "kept_lines",
    "leak_line",
    "main",
    "run_demo",
    "summary_lines",
]

DEFAULT_SPEED = 60.0
# After the reset, how long (app seconds) the narrator waits for alerts still active to
# end before it says where each stands.
_SETTLE_APP_S = 300.0
_MIB = 1024 * 1024
# 3 GiB: the leak below fills it in about 17 minutes from the pod's start, so no trend
# has 15 minutes of history in time and the direct rule must act; at this size the sawtooth
# (2 minutes of request garbage, 8% of the limit) leaves the break well under 95%.
_MEMORY_LIMIT = 3 * 1024 * _MIB
# The leak: keys fast enough to trip CacheKeysGrowing first (a flush frees them, and the
# second flush is what lets the heap fall after the break); heap that no flush frees; a
# pool that leaks too slowly to fill before memory runs out.
_LEAK: dict[str, float | bool] = {
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
    #: The story's length in wall seconds (``app_s`` over the speed).
    wall_s: float = 0.0
    #: SIGINT or SIGTERM ended the story before it was told.
    interrupted: bool = False


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
        app = format_duration(int(self._clock.elapsed()))
        print(f"[{real:5.1f}s | app t+{app:>6}] {text}", file=self._out)
        self._out.flush()


def _config(app_url: str, rules: Path, state_dir: Path) -> Config:
    return Config.validate(
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
    keep: bool = False,
) -> DemoResult:
    """Run the whole story; returns what happened (``complete`` when flush, break, reset).

    With ``keep``, the app and the sidecar stay up after the story until SIGTERM or SIGINT.
    Either signal during the story ends it early (``interrupted``), cleanly.
    """
    clock = CompressedClock(speed)
    say = _Narrator(out, clock).say
    token = secrets.token_urlsafe(24)
    result = DemoResult()
    demo = DemoApp(clock=clock.monotonic, wall=clock.wall, sleep=clock.sleep)
    signalled = asyncio.Event()
    with (
        tempfile.TemporaryDirectory(prefix="leak-sidecar-demo-") as tmp,
        as_file(files("sidecar.pack")) as pack,
        _on_signals(signalled),
    ):
        runner = await serve("127.0.0.1", 0, demo)
        app_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        cfg = _config(app_url, Path(pack), Path(tmp))
        # A real token: the sidecar's POST routes are as locked as in production.
        cfg = msgspec.structs.replace(cfg, token=Secret(token))
        sidecar = Sidecar(cfg, clock=clock.wall, monotonic=clock.monotonic, sleep=clock.sleep)
        stop = asyncio.Event()
        task = asyncio.create_task(sidecar.run(stop), name="sidecar")
        try:
            async with asyncio.timeout(10):
                await sidecar.started.wait()
            sidecar_url = f"http://127.0.0.1:{sidecar.port}"
            say(
                f"time runs {speed:g}x faster here: 1 second of yours is "
                f"{format_duration(speed)} for the app and the sidecar"
            )
            say(f"demo app (a Go order service, simulated) listening on {app_url}")
            rules = [r for g in sidecar.groups for r in g.rules]
            say(
                f"sidecar listening on {sidecar_url}, {len(rules)} rules from the shipped "
                f"pack: {', '.join(r.name for r in rules)}"
            )
            for_s = {r.name: r.spec.for_ms / 1000 for r in rules}
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
                watcher = Watcher(
                    http, app_url, sidecar_url, say, clock.elapsed,
                    memory_limit=_MEMORY_LIMIT, for_s=for_s,
                )  # fmt: skip
                await wait_any(_story(watcher, result, deadline_s, say), signalled.wait())
                if signalled.is_set() and not result.complete:
                    result.interrupted = True
                    say("interrupted (Ctrl-C or SIGTERM): the story ends here")
                watcher.close_stories()
                result.calls = dict(watcher.counts)
                result.heap_peak = watcher.heap_peak
                result.heap_at_break = watcher.heap_at_break
            result.app_s = clock.elapsed()
            result.wall_s = result.app_s / speed
            print_summary(out, result)
            if keep and not result.interrupted:
                print_kept(out, app_url, sidecar_url, token, speed)
                await signalled.wait()
            else:
                print_next(out)
            if signalled.is_set():
                print("stopping the app and the sidecar", file=out)
                out.flush()
        finally:
            stop.set()
            async with asyncio.timeout(30):
                await task
            await runner.cleanup()
    return result


async def _story(
    watcher: Watcher, result: DemoResult, deadline_s: float, say: Callable[[str], None]
) -> None:
    """Switch the leak on and watch the story through, within ``deadline_s``."""
    await watcher.observe()
    await watcher.leak(_LEAK)
    say(leak_line(_LEAK))
    try:
        async with asyncio.timeout(deadline_s):
            await watcher.until_story_told()
            result.complete = True
            await watcher.settle(_SETTLE_APP_S)
    except TimeoutError:
        say(f"the story did not complete within {deadline_s:g}s; stopping")


@contextlib.contextmanager
def _on_signals(event: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT (Ctrl-C) set ``event`` while the block runs, instead of a
    KeyboardInterrupt's traceback; the handlers are removed after."""
    loop = asyncio.get_running_loop()
    sigs = (signal.SIGTERM, signal.SIGINT)
    for sig in sigs:
        loop.add_signal_handler(sig, event.set)
    try:
        yield
    finally:
        for sig in sigs:
            loop.remove_signal_handler(sig)


def leak_line(leak: dict[str, float | bool]) -> str:
    """What the leak adds, per second of app time."""
    return (
        f"leak switched on: +{si(float(leak['keys_per_second']))} cache keys/s, "
        f"+{format_bytes(float(leak['heap_bytes_per_second']))}/s of heap, "
        f"+{si(float(leak['pool_per_second']))} pool connections/s"
    )


def summary_lines(result: DemoResult) -> list[str]:
    """The story's outcome: how close the heap came, and what the app received."""
    flushes = result.calls.get("/v1/cache/flush", 0)
    breaks = result.calls.get("/v1/circuit/break", 0)
    resets = result.calls.get("/v1/circuit/reset", 0)
    lines = []
    if result.heap_at_break is not None:
        verdict = (
            "the kernel never had to kill the app"
            if result.heap_peak < 1
            else "it crossed the limit: the kernel would have killed the app"
        )
        lines.append(
            f"memory: the heap in use peaked at {format_bytes(result.heap_peak * _MEMORY_LIMIT)} "
            f"({format_percent(result.heap_peak)} of the {format_bytes(_MEMORY_LIMIT)} limit) "
            f"and the circuit broke at {format_bytes(result.heap_at_break * _MEMORY_LIMIT)} "
            f"({format_percent(result.heap_at_break)}); {verdict}"
        )
    lines.append(
        f"summary: the app received {flushes} flush{'' if flushes == 1 else 'es'}, "
        f"{breaks} break{'' if breaks == 1 else 's'} and {resets} reset"
        f"{'' if resets == 1 else 's'} in {format_duration(round(result.app_s))} of app time "
        f"({result.wall_s:.1f}s of yours); every line above was observed over HTTP"
    )
    return lines


def print_summary(out: TextIO, result: DemoResult) -> None:
    """Print the outcome lines."""
    for line in summary_lines(result):
        print(line, file=out)
    out.flush()


NEXT_STEPS = (
    "next: `leak-sidecar demo --keep` tells the same story, then leaves the app and the "
    "sidecar running with the status page to explore",
    "next: next to your own service, `leak-sidecar check-target "
    "http://127.0.0.1:8080/debug/vars` says which pack rules can evaluate against it; then "
    "`LEAK_SIDECAR_TOKEN=<secret> leak-sidecar run` (the README's quick start)",
)


def print_next(out: TextIO) -> None:
    """Where to look next, after a demo that does not keep running."""
    for line in NEXT_STEPS:
        print(line, file=out)
    out.flush()


_BREAK_BODY = '{"reason": "trying the breaker by hand", "hold": true}'
_RESET_BODY = '{"reason": "done trying"}'


def kept_lines(app_url: str, sidecar_url: str, token: str, speed: float) -> list[str]:
    """The status page, and curl commands that work against the running demo as printed."""
    auth = shlex.quote(f"Authorization: Bearer {token}")
    post = f"curl -fsS -X POST -H {auth} -H 'Content-Type: application/json'"
    return [
        f"kept running (time still runs {speed:g}x faster); Ctrl-C or SIGTERM stops both",
        f"  status page: {sidecar_url}/",
        f"  curl -fsS {sidecar_url}/v1/circuit",
        f"  curl -fsS {sidecar_url}/api/v1/alerts",
        f"  curl -fsS {sidecar_url}/metrics",
        f"  {post} -d {shlex.quote(_BREAK_BODY)} {sidecar_url}/v1/circuit/break",
        f"  {post} -d {shlex.quote(_RESET_BODY)} {sidecar_url}/v1/circuit/reset",
        f"  curl -fsS {app_url}/debug/vars",
    ]


def print_kept(out: TextIO, app_url: str, sidecar_url: str, token: str, speed: float) -> None:
    """Print where the kept demo can be looked at."""
    for line in kept_lines(app_url, sidecar_url, token, speed):
        print(line, file=out)
    out.flush()


def main(speed: float = DEFAULT_SPEED, out: TextIO | None = None, *, keep: bool = False) -> int:
    """``leak-sidecar demo``: 0 when the story completed (flush, break, reset), else 1."""
    stream = out if out is not None else sys.stdout
    # The narration is the output; the sidecar's own log lines would only drown it.
    logs.configure("json", "error", io.StringIO())
    result = asyncio.run(run_demo(stream, speed=speed, keep=keep))
    if result.interrupted:
        return 130  # the shell's code for an interrupted command
    # The story: a flush, the break before the limit, a second flush that frees the keys
    # leaked since the first, then the reset.
    counts = tuple(result.calls.get(p, 0) for p in _STORY)
    ok = (
        result.complete
        and counts == (2, 1, 1)
        and result.heap_at_break is not None
        and result.heap_peak < 1
    )
    return 0 if ok else 1


_STORY = ("/v1/cache/flush", "/v1/circuit/break", "/v1/circuit/reset")
