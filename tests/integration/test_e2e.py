"""End to end on loopback: the demo app leaks, the embedded engine notices, the app is called."""

from __future__ import annotations

import asyncio
import io
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from conftest import running

from sidecar.cli import main
from sidecar.core.config import Config
from sidecar.demo.app import DemoApp, LeakSettings, serve
from sidecar.demo.narrator import CompressedClock, run_demo
from sidecar.supervisor import Sidecar

SPEED = 60.0


async def test_the_demo_story_flush_then_break_before_the_limit_then_flush_then_reset() -> None:
    """Fast leak in a new pod: a flush, then OOMImminent breaks the circuit with the heap in
    use under 95% of the limit, a second flush frees the leaked keys, the circuit resets."""
    out = io.StringIO()
    result = await run_demo(out, speed=SPEED)
    text = out.getvalue()
    assert result.complete, text
    assert result.calls == {
        "/v1/cache/flush": 2,
        "/v1/circuit/break": 1,
        "/v1/circuit/reset": 1,
    }, text
    received = [line.split("] app received ")[1].split(" (")[0] for line in text.splitlines()
                if "] app received " in line]  # fmt: skip
    assert received == [
        "POST /v1/cache/flush",
        "POST /v1/circuit/break",
        "POST /v1/cache/flush",
        "POST /v1/circuit/reset",
    ]
    assert result.heap_at_break is not None
    assert result.heap_at_break < 0.95, text
    assert result.heap_peak < 0.95, text
    assert "sidecar: alert CacheKeysGrowing is firing" in text
    assert "sidecar: alert OOMImminent is firing" in text
    assert "alert ConnPoolSaturated" not in text
    assert "sidecar: circuit open (alert OOMImminent firing)" in text
    assert (
        f", {result.heap_at_break:.0%} of the memory limit: the leak is stopped before the "
        "kernel OOM-kills the app at 100%"
    ) in text
    assert (
        "sidecar: circuit closed (every holding alert resolved and its condition cleared)" in text
    )


RULE = """
groups:
  - name: latency
    rules:
      - alert: KeysAbove
        expr: cache_keys_total > 100000
        for: 1m
        labels:
          action: cache_flush
"""


async def test_detection_latency_is_within_scrape_eval_and_for(tmp_path: Path) -> None:
    """The flush arrives within scrape_interval + evaluation_interval + for (+ margin) of the
    moment the app's key count crossed the threshold."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "latency.yml").write_text(RULE)
    clock = CompressedClock(SPEED)
    demo = DemoApp(clock=clock.monotonic, wall=clock.wall, sleep=clock.sleep)
    runner = await serve("127.0.0.1", 0, demo)
    cfg = Config.validate(
        {
            "app": {"base_url": f"http://127.0.0.1:{runner.addresses[0][1]}"},
            "scrape": {"interval": "15s", "timeout": "5s"},
            "rules": {"files": [str(tmp_path / "rules" / "*.yml")], "evaluation_interval": "15s"},
            "server": {"listen": "127.0.0.1:0"},
            "state_dir": str(tmp_path / "state"),
        }
    )
    sidecar = Sidecar(cfg, clock=clock.wall, monotonic=clock.monotonic, sleep=clock.sleep)
    try:
        async with running(sidecar):
            await clock.sleep(30)  # a few healthy scrapes first
            keys_before = demo.vars()["cache_keys_total"]
            rate = 2000.0
            demo.sim.set_leak(LeakSettings(on=True, keys_per_second=rate, pool_per_second=0))
            leak_on = clock.wall()
            crossed = leak_on + (100000 - keys_before) / rate
            async with asyncio.timeout(30):
                while not demo.calls:  # noqa: ASYNC110 -- the app records calls as they come
                    await asyncio.sleep(0.02)
            call = demo.calls[0]
            assert call.path == "/v1/cache/flush"
            latency = call.time - crossed
            bound = cfg.scrape.interval + cfg.rules.evaluation_interval + 60.0
            margin = 15.0  # app seconds: a quarter second of wall time at 60x
            assert 60.0 <= latency <= bound + margin, (latency, bound)
    finally:
        await runner.cleanup()


@asynccontextmanager
async def _demo(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`leak-sidecar demo ARGS` run from outside the source tree (the installed package),
    killed if the test leaves it running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "demo", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd="/",
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _read_until(
    proc: asyncio.subprocess.Process, done: Callable[[str], bool], within: float
) -> list[str]:
    """The narration's lines up to the first one ``done`` accepts (bounded)."""
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(within):
        while not lines or not done(lines[-1]):
            raw = await proc.stdout.readline()
            assert raw, "\n".join(lines)
            lines.append(raw.decode().rstrip("\n"))
    return lines


def _assert_released(ports: list[int]) -> None:
    """No listener is left on any of ``ports``."""
    for port in ports:
        with socket.socket() as sock:
            # A listener still on the port makes this bind fail even with SO_REUSEADDR.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen()


async def test_demo_keep_tells_the_story_then_serves_until_sigterm_and_exits_0() -> None:
    """`leak-sidecar demo --keep` on a fresh install tells the story, then leaves the app and
    the sidecar up: the printed status page and every printed curl command answer, and
    SIGTERM ends it with exit 0 and both ports released."""
    async with _demo("--keep") as proc:
        lines = await _read_until(proc, lambda line: line.endswith("/debug/vars"), within=110)
        text = "\n".join(lines)
        assert "time runs 60x faster here: 1 second of yours is 1m for the app" in text
        assert "6 rules from the shipped pack" in text
        memory, summary, kept, page, *curls = lines[-10:]
        assert re.fullmatch(
            r"memory: the heap in use peaked at \d\.\d GiB \(\d\d% of the 3\.0 GiB limit\) "
            r"and the circuit broke at \d\.\d GiB \(\d\d%\); the kernel never had to kill "
            r"the app",
            memory,
        ), text
        assert re.fullmatch(
            r"summary: the app received 2 flushes, 1 break and 1 reset in \d+m\d+s of app "
            r"time \(\d+\.\ds of yours\); every line above was observed over HTTP",
            summary,
        ), text
        assert kept == "kept running (time still runs 60x faster); Ctrl-C or SIGTERM stops both"
        status_url = page.removeprefix("  status page: ")
        app_url = curls[-1].split()[-1].removesuffix("/debug/vars")
        async with aiohttp.ClientSession() as http, http.get(status_url) as resp:
            assert resp.status == 200
            page_text = await resp.text()
        assert "<title>leak-sidecar status</title>" in page_text
        # The demo's heap is drawn against OOMImminent's 80% line and its 3 GiB limit.
        assert ">OOMImminent &gt; 80% of the limit (2.58G)</text>" in page_text
        assert ">memory limit 3.22G</text>" in page_text
        assert len(curls) == 6
        for line in curls:
            done = subprocess.run(  # noqa: ASYNC221 -- curl is quick; the demo runs in its own process
                shlex.split(line), capture_output=True, timeout=10, check=False
            )
            assert (line, done.returncode, done.stderr) == (line, 0, b"")
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            rest, err = await proc.communicate()
    assert (proc.returncode, rest.decode(), err.decode()) == (
        0, "stopping the app and the sidecar\n", ""
    )  # fmt: skip
    _assert_released([int(url.rstrip("/").rsplit(":", 1)[1]) for url in (status_url, app_url)])


async def test_ctrl_c_during_the_story_stops_it_cleanly_with_130() -> None:
    """SIGINT while the story runs: no traceback, the narration says the story ends there
    and where each alert stands, both servers stop and release their ports, exit 130."""
    async with _demo() as proc:
        lines = await _read_until(proc, lambda line: "] leak switched on: " in line, within=30)
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            rest, err = await proc.communicate()
    tail = rest.decode().splitlines()
    assert (proc.returncode, err.decode()) == (130, "")
    said = [line.split("] ", 1)[-1] for line in tail if line.startswith("[")]
    # An observation may have been narrated just before the signal landed, and an alert
    # already pending is said to be so after it.
    end = said.index("interrupted (Ctrl-C or SIGTERM): the story ends here")
    assert all(" as the demo ends" in line for line in said[end + 1 :]), tail
    assert tail[-1] == "stopping the app and the sidecar"
    assert tail[-4].startswith("summary: the app received 0 flushes, 0 breaks and 0 resets in ")
    ports = [int(line.split("listening on http://127.0.0.1:")[1].split(",")[0])
             for line in lines if "listening on http://127.0.0.1:" in line]  # fmt: skip
    assert len(ports) == 2
    _assert_released(ports)


@pytest.mark.parametrize("speed", ["0", "1000"])
def test_demo_refuses_a_silly_speed(speed: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--speed outside 1..600 is a usage error, exit 2."""
    assert main(["demo", "--speed", speed]) == 2
    assert capsys.readouterr().err == f"demo: --speed: expected 1 to 600, got {speed}\n"
