"""The demo target over HTTP: expvar as Go prints it, the app's endpoints, recording, faults."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path

import aiohttp
import orjson
import pytest
from conftest import free_port

from sidecar.demo import app as demo_app
from sidecar.demo.app import (
    DEMO_APP,
    Call,
    DemoApp,
    Fault,
    render_expvar,
    scaled_clock,
    serve,
)
from sidecar.demo.app_cmd import run_demo_app

FIXTURES = Path(__file__).parent / "fixtures" / "goapp"
WALL = 1_800_000_000.0
TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Clock:
    """A monotonic clock the test steps by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Sleeps:
    """Records injected delays and returns at once, or never when ``block`` is set."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.block = False
        self.entered = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.entered.set()
        if self.block:
            await asyncio.Event().wait()


@pytest.fixture
def clock() -> Clock:
    """A fresh stepped clock."""
    return Clock()


@pytest.fixture
def sleeps() -> Sleeps:
    """The demo app's injected sleep."""
    return Sleeps()


@pytest.fixture
def demo(clock: Clock, sleeps: Sleeps) -> DemoApp:
    """A demo app that wants a token, on a stepped clock and a fixed wall clock."""
    return DemoApp(clock=clock, wall=lambda: WALL, token=TOKEN, sleep=sleeps)


@pytest.fixture
async def url(demo: DemoApp) -> AsyncIterator[str]:
    """The demo app served on a free loopback port."""
    runner = await serve("127.0.0.1", 0, demo)
    assert runner.app[DEMO_APP] is demo
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session with a bounded timeout."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def refusal(http: aiohttp.ClientSession, url: str, body: bytes) -> str:
    """POST ``body`` to a demo control, which must refuse it with 422; the error text."""
    async with http.post(url, data=body) as r:
        assert r.status == 422
        error: str = (await r.json())["error"]
        return error


def matches(error: str, expected: str) -> bool:
    """``expected`` exactly, or, ending in ``...``, our words followed by a library's."""
    if expected.endswith("..."):
        return error.startswith(expected.removesuffix("...")) and len(error) > len(expected) - 3
    return error == expected


async def get_vars(http: aiohttp.ClientSession, url: str) -> dict[str, object]:
    async with http.get(f"{url}/debug/vars") as resp:
        assert resp.status == 200
        data: dict[str, object] = orjson.loads(await resp.read())
        return data


@pytest.mark.parametrize("name", ["vars.json", "vars_wrapped.json"])
def test_render_expvar_matches_real_go_output_byte_for_byte(name: str) -> None:
    """A real Go service's /debug/vars body, decoded and re-rendered, comes out identical."""
    raw = (FIXTURES / name).read_bytes()
    maps = frozenset({"caches", "http.requests-by-code", "leaky_sessions", "pool"})
    assert render_expvar(orjson.loads(raw), maps) == raw


async def test_debug_vars_is_served_in_go_expvar_format(
    http: aiohttp.ClientSession, url: str, demo: DemoApp
) -> None:
    """GET /debug/vars answers Go's content type and one sorted var per line."""
    async with http.get(f"{url}/debug/vars") as resp:
        body = await resp.read()
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    lines = body.decode().split("\n")
    assert lines[0] == "{"
    assert lines[-2:] == ["}", ""]
    assert lines[1:5] == [
        '"cache_keys_total": 1500,',
        '"caches": {"orders": 1200, "sessions": 300},',
        '"circuit_open": 0,',
        '"cmdline": ["order-service"],',
    ]
    assert lines[8] == (
        '"http_requests": {"orders": {"200": 0, "503": 0}, "sessions": {"200": 0, "503": 0}},'
    )
    assert orjson.loads(body) == demo.vars()


async def test_break_is_recorded_with_headers_body_and_time(
    http: aiohttp.ClientSession, url: str, demo: DemoApp
) -> None:
    """A break opens the circuit and the call is recorded as received, token redacted."""
    headers = {**AUTH, "Idempotency-Key": "k1"}
    async with http.post(f"{url}/v1/circuit/break", json={"reason": "r"}, headers=headers) as r:
        assert r.status == 200
        assert await r.json() == {"state": "open", "since": WALL, "changed": True}
    assert (await get_vars(http, url))["circuit_open"] == 1
    [call] = demo.calls
    assert call.headers["Authorization"] == "<redacted>"
    assert call.headers["Idempotency-Key"] == "k1"
    assert call == Call(
        method="POST",
        path="/v1/circuit/break",
        headers=call.headers,
        idempotency_key="k1",
        authorization=True,
        authorized=True,
        body={"reason": "r"},
        time=WALL,
        status=200,
        fault=None,
        replayed=False,
    )
    async with http.get(f"{url}/demo/calls") as r:
        assert await r.json() == {"calls": [asdict(call)]}
    async with http.delete(f"{url}/demo/calls") as r:
        assert await r.json() == {"calls": []}
    assert demo.calls == []


async def test_same_idempotency_key_replays_the_first_answer(
    http: aiohttp.ClientSession, url: str, demo: DemoApp
) -> None:
    """A retried call with the same key gets the first answer and acts no second time."""
    replayed = []
    for _ in range(2):
        headers = {**AUTH, "Idempotency-Key": "same"}
        async with http.post(f"{url}/v1/cache/flush", json={}, headers=headers) as r:
            assert await r.json() == {
                "flushed": {"orders": 1200, "sessions": 300},
                "flushed_keys": 1500,
            }
            replayed.append(r.headers.get("Idempotent-Replayed"))
    assert replayed == [None, "true"]
    assert [c.replayed for c in demo.calls] == [False, True]
    assert demo.sim.expvar(["x"])["memstats"]["NumForcedGC"] == 1
    async with http.post(f"{url}/v1/cache/flush", headers={**AUTH, "Idempotency-Key": "new"}) as r:
        assert await r.json() == {"flushed": {"orders": 0, "sessions": 0}, "flushed_keys": 0}
    assert demo.calls[-1].body is None


async def test_flush_reset_and_get_circuit_act_on_state(
    http: aiohttp.ClientSession, url: str
) -> None:
    """Flush empties the caches; reset closes the circuit; GET /v1/circuit reports it."""
    async with http.post(f"{url}/v1/cache/flush", headers=AUTH) as r:
        assert r.status == 200
    doc = await get_vars(http, url)
    assert (doc["cache_keys_total"], doc["caches"]) == (0, {"orders": 0, "sessions": 0})
    async with http.post(f"{url}/v1/circuit/break", headers=AUTH) as r:
        assert r.status == 200
    async with http.post(f"{url}/v1/circuit/reset", headers=AUTH) as r:
        assert await r.json() == {"state": "closed", "since": WALL, "changed": True}
    async with http.get(f"{url}/v1/circuit") as r:
        assert await r.json() == {"state": "closed", "since": WALL}


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]
)
async def test_wrong_or_missing_token_is_refused_and_recorded(
    http: aiohttp.ClientSession, url: str, demo: DemoApp, headers: dict[str, str]
) -> None:
    """Without the right bearer token nothing happens; the refusal is recorded."""
    async with http.post(f"{url}/v1/circuit/break", headers=headers) as r:
        assert r.status == 401
        assert await r.json() == {"error": "missing or wrong bearer token"}
    assert demo.sim.circuit()["state"] == "closed"
    [call] = demo.calls
    assert (call.authorization, call.authorized, call.status) == (bool(headers), False, 401)


async def test_without_a_token_configured_every_call_is_authorized(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    """A demo app built without a token accepts calls that carry none."""
    demo = DemoApp(clock=clock)
    runner = await serve("127.0.0.1", 0, demo)
    try:
        port = runner.addresses[0][1]
        async with http.post(f"http://127.0.0.1:{port}/v1/circuit/break") as r:
            assert r.status == 200
    finally:
        await runner.cleanup()
    assert [(c.authorization, c.authorized) for c in demo.calls] == [(False, True)]


async def test_body_that_is_not_json_is_refused_and_recorded(
    http: aiohttp.ClientSession, url: str, demo: DemoApp
) -> None:
    """A body that is not JSON gets 400 and changes nothing."""
    async with http.post(f"{url}/v1/cache/flush", data=b"{nope", headers=AUTH) as r:
        assert r.status == 400
        assert (await r.json())["error"].startswith("body is not JSON: ")
    assert (demo.calls[0].body, demo.calls[0].status) == (None, 400)
    assert demo.sim.expvar(["x"])["cache_keys_total"] == 1500


async def test_oversized_body_and_wrong_method_are_refused(
    http: aiohttp.ClientSession, url: str
) -> None:
    """A body above 64 KiB gets 413 and a GET on a POST endpoint 405."""
    async with http.post(f"{url}/v1/cache/flush", data=b"x" * 70_000, headers=AUTH) as r:
        assert r.status == 413
    async with http.get(f"{url}/v1/cache/flush") as r:
        assert r.status == 405
    async with http.get(f"{url}/healthz") as r:
        assert (r.status, await r.text()) == (200, "ok\n")


async def test_status_fault_fails_the_next_calls_then_clears(
    http: aiohttp.ClientSession, url: str, demo: DemoApp
) -> None:
    """{"status": 500, "times": 2} fails two calls without acting; the third succeeds."""
    fault = {"path": "/v1/circuit/break", "status": 500, "times": 2}
    async with http.post(f"{url}/demo/faults", json=fault) as r:
        assert r.status == 201
        assert (await r.json())["faults"] == [
            {**fault, "method": None, "delay": None, "drop": False}
        ]
    statuses = []
    for _ in range(2):
        async with http.post(f"{url}/v1/circuit/break", headers=AUTH) as r:
            statuses.append(r.status)
            assert demo.sim.circuit()["state"] == "closed"
    async with http.post(f"{url}/v1/circuit/break", headers=AUTH) as r:
        statuses.append(r.status)
    assert statuses == [500, 500, 200]
    assert [c.fault for c in demo.calls] == ["status=500", "status=500", None]
    assert demo.sim.circuit()["state"] == "open"
    async with http.get(f"{url}/demo/faults") as r:
        assert await r.json() == {"faults": []}


async def test_fault_filters_by_method_and_lasts_until_cleared(
    http: aiohttp.ClientSession, url: str
) -> None:
    """A fault with times null and a method hits only that method, until DELETE."""
    fault = {"path": "/debug/vars", "method": "GET", "status": 503, "times": None}
    async with http.post(f"{url}/demo/faults", json=fault) as r:
        assert r.status == 201
    for _ in range(3):
        async with http.get(f"{url}/debug/vars") as r:
            assert r.status == 503
    async with http.delete(f"{url}/demo/faults") as r:
        assert await r.json() == {"faults": []}
    async with http.get(f"{url}/debug/vars") as r:
        assert r.status == 200


async def test_delay_fault_waits_then_acts(
    http: aiohttp.ClientSession, url: str, demo: DemoApp, sleeps: Sleeps
) -> None:
    """A delayed call sleeps the injected sleep, then acts as usual."""
    async with http.post(f"{url}/demo/faults", json={"path": "/v1/cache/flush", "delay": 10}):
        pass
    async with http.post(f"{url}/v1/cache/flush", headers=AUTH) as r:
        assert r.status == 200
    assert sleeps.calls == [10.0]
    assert demo.calls[0].fault == "delay=10.0"


async def test_shutdown_cuts_an_injected_delay_short(
    http: aiohttp.ClientSession, demo: DemoApp, sleeps: Sleeps
) -> None:
    """Stopping the app wakes a delayed call, which answers 503 and does nothing."""
    sleeps.block = True
    demo.faults.add(Fault(path="/v1/circuit/break", delay=3600))
    runner = await serve("127.0.0.1", 0, demo)
    port = runner.addresses[0][1]

    async def call() -> tuple[int, object]:
        async with http.post(f"http://127.0.0.1:{port}/v1/circuit/break", headers=AUTH) as r:
            return r.status, await r.json()

    pending = asyncio.create_task(call())
    async with asyncio.timeout(10):
        await sleeps.entered.wait()
        await runner.cleanup()
        assert await pending == (503, {"error": "shutting down"})
    assert (demo.calls, demo.sim.circuit()["state"]) == ([], "closed")


async def test_a_restarted_app_keeps_its_state_and_its_faults_work(
    http: aiohttp.ClientSession, demo: DemoApp, sleeps: Sleeps
) -> None:
    """Stopped (connections refused) and served again, the app has its circuit and calls."""
    runner = await serve("127.0.0.1", 0, demo)
    port = runner.addresses[0][1]
    async with http.post(f"http://127.0.0.1:{port}/v1/circuit/break", headers=AUTH) as r:
        assert r.status == 200
    await runner.cleanup()
    with pytest.raises(aiohttp.ClientConnectorError):
        async with http.get(f"http://127.0.0.1:{port}/v1/circuit"):
            pass
    runner = await serve("127.0.0.1", port, demo)
    try:
        demo.faults.add(Fault(path="/v1/circuit/reset", delay=5))
        async with http.post(f"http://127.0.0.1:{port}/v1/circuit/reset", headers=AUTH) as r:
            assert await r.json() == {"state": "closed", "since": WALL, "changed": True}
    finally:
        await runner.cleanup()
    assert sleeps.calls == [5.0]
    assert [c.path for c in demo.calls] == ["/v1/circuit/break", "/v1/circuit/reset"]


async def test_drop_fault_acts_then_cuts_the_reply(
    http: aiohttp.ClientSession, url: str, demo: DemoApp
) -> None:
    """A dropped call flushes, then the client sees a reply cut off mid-body."""
    demo.faults.add(Fault(path="/v1/cache/flush", drop=True))
    demo.faults.add(Fault(path="/debug/vars", drop=True))
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(f"{url}/v1/cache/flush", headers=AUTH) as r:
            await r.read()
    assert demo.calls[0].fault == "drop"
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(f"{url}/debug/vars") as r:
            await r.read()
    assert (await get_vars(http, url))["cache_keys_total"] == 0


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"path": "/v1/cache/flush"}', "a fault needs status, delay or drop"),
        (
            b'{"path": "/demo/leak", "status": 500}',
            "faults cannot target the demo controls, got '/demo/leak'",
        ),
        (b'{"path": "/x", "status": 500, "drop": true}', "status and drop exclude each other"),
        (b'{"path": "x", "status": 500}', "path: expected str matching regex '^/', got 'x'"),
        (b'{"path": "/x", "status": 200}', "status: expected int >= 400, got 200"),
        (b'{"path": "/x", "status": 600}', "status: expected int <= 599, got 600"),
        (b'{"path": "/x", "status": 500.0}', "status: expected int | null, got 500.0"),
        (b'{"path": "/x", "delay": 3601}', "delay: expected float <= 3600.0, got 3601"),
        (b'{"path": "/x", "drop": true, "times": 0}', "times: expected int >= 1, got 0"),
        (b'{"path": "/x", "drop": 1}', "drop: expected bool, got 1"),
        (b'{"status": 500}', "path: required key is missing"),
        (b'{"path": "/x", "status": 500, "extra": 1}', "extra: unknown key"),
        (b"[]", "expected object, got []"),
        # orjson's own account of the fault follows: not pinned.
        (b"{nope", "body is not JSON: ..."),
    ],
)
async def test_bad_fault_is_refused_with_the_reason(
    http: aiohttp.ClientSession, url: str, body: bytes, error: str
) -> None:
    """An invalid fault gets 422 naming what is wrong, and nothing is queued."""
    assert matches(await refusal(http, f"{url}/demo/faults", body), error)
    async with http.get(f"{url}/demo/faults") as r:
        assert await r.json() == {"faults": []}


async def test_pending_faults_are_capped(
    http: aiohttp.ClientSession, url: str, demo: DemoApp
) -> None:
    """Past 100 pending faults a new one is refused with 422."""
    for _ in range(100):
        demo.faults.add(Fault(path="/debug/vars", status=500))
    async with http.post(f"{url}/demo/faults", json={"path": "/x", "status": 500}) as r:
        assert (r.status, await r.json()) == (422, {"error": "at most 100 pending faults"})
    assert len(demo.faults.pending()) == 100


async def test_leak_switch_over_http(http: aiohttp.ClientSession, url: str, clock: Clock) -> None:
    """POST /demo/leak merges into the current settings and the leak runs from then on."""
    async with http.post(f"{url}/demo/leak", json={"on": True, "keys_per_second": 10}) as r:
        assert await r.json() == {
            "on": True,
            "keys_per_second": 10.0,
            "heap_bytes_per_second": 1048576.0,
            "pool_per_second": 0.5,
        }
    clock.t += 100
    assert (await get_vars(http, url))["cache_keys_total"] == 2500
    async with http.post(f"{url}/demo/leak", json={"on": False}) as r:
        assert (await r.json())["keys_per_second"] == 10.0
    async with http.get(f"{url}/demo/leak") as r:
        assert (await r.json())["on"] is False


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"keys_per_second": -1}', "keys_per_second: expected float >= 0.0, got -1"),
        (b'{"pool_per_second": 10001}', "pool_per_second: expected float <= 10000.0, got 10001"),
        (b'{"on": "yes"}', "on: expected bool, got 'yes'"),
        (b'{"keys_per_second": "5"}', "keys_per_second: expected float, got '5'"),
        (b'{"bogus": 1}', "bogus: unknown key"),
        (b"[]", "expected a JSON object, got list"),
        (b"", "body is not JSON: ..."),
    ],
)
async def test_bad_leak_settings_are_refused(
    http: aiohttp.ClientSession, url: str, body: bytes, error: str
) -> None:
    """Invalid leak settings get 422 and the leak stays as it was."""
    assert matches(await refusal(http, f"{url}/demo/leak", body), error)
    async with http.get(f"{url}/demo/leak") as r:
        assert (await r.json())["on"] is False


async def test_oldest_idempotency_keys_and_calls_are_forgotten(
    http: aiohttp.ClientSession, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past their caps the oldest remembered answer and the oldest recorded call go."""
    monkeypatch.setattr(demo_app, "_MAX_IDEMPOTENCY_KEYS", 2)
    monkeypatch.setattr(demo_app, "_MAX_CALLS", 3)
    demo = DemoApp(clock=clock)
    runner = await serve("127.0.0.1", 0, demo)
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/circuit/break"
        for key in ("a", "b", "c", "a"):
            async with http.post(url, headers={"Idempotency-Key": key}) as r:
                assert r.status == 200
    finally:
        await runner.cleanup()
    assert [(c.idempotency_key, c.replayed) for c in demo.calls] == [
        ("b", False),
        ("c", False),
        ("a", False),
    ]


async def test_serve_on_a_taken_port_raises() -> None:
    """serve() on a port in use raises the OSError from the bind."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="address already in use"):
            await serve("127.0.0.1", taken.getsockname()[1])


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan"), 1e9])
def test_run_demo_app_refuses_a_bad_speed(capsys: pytest.CaptureFixture[str], speed: float) -> None:
    """A speed factor that is not above 0 and at most 10000 exits 2 with the reason."""
    assert run_demo_app("127.0.0.1:8080", False, speed=speed) == 2
    assert capsys.readouterr().err == (
        f"demo-app: --speed: expected a factor above 0 and up to 10000, got {speed!r}\n"
    )


def test_scaled_clock_runs_faster_from_its_start() -> None:
    """scaled_clock(60) reads its base's start, then 60 s for every second that passes."""
    base = Clock()
    fast = scaled_clock(60.0, base)
    assert fast() == 1000.0
    base.t += 2.5
    assert fast() == 1150.0


def test_run_demo_app_refuses_a_bad_listen_address(capsys: pytest.CaptureFixture[str]) -> None:
    """A --listen without host:port exits 2 with the reason."""
    assert run_demo_app("8080", False) == 2
    assert capsys.readouterr().err == (
        "demo-app: --listen: expected host:port such as 127.0.0.1:8080, got '8080'\n"
    )


async def start_demo_app(listen: str) -> asyncio.subprocess.Process:
    """``run_demo_app(listen, leak=True)`` in a child process, its log on a pipe."""
    code = (
        "import sys; from sidecar.demo.app_cmd import run_demo_app; "
        f"sys.exit(run_demo_app({listen!r}, True))"
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parent.parent,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )


async def test_run_demo_app_reports_a_taken_port() -> None:
    """A port already in use exits 1 after logging demo_app.bind_failed."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = await start_demo_app(f"127.0.0.1:{taken.getsockname()[1]}")
        async with asyncio.timeout(30):
            out, _ = await proc.communicate()
    assert proc.returncode == 1
    [line] = out.decode().splitlines()
    assert json.loads(line)["event"] == "demo_app.bind_failed"


async def test_run_demo_app_serves_until_sigterm(http: aiohttp.ClientSession) -> None:
    """The subcommand's entry serves with the leak on and exits 0 on SIGTERM."""
    port = free_port()
    proc = await start_demo_app(f"127.0.0.1:{port}")
    try:
        async with asyncio.timeout(30):
            assert proc.stdout is not None
            line = json.loads(await proc.stdout.readline())
            assert (line["event"], line["listen"], line["leak"], line["speed"]) == (
                "demo_app.listening",
                f"127.0.0.1:{port}",
                True,
                1.0,
            )
            async with http.get(f"http://127.0.0.1:{port}/demo/leak") as r:
                assert (await r.json())["on"] is True
            doc = await get_vars(http, f"http://127.0.0.1:{port}")
            assert doc["cmdline"] == ["-c"]
            proc.send_signal(signal.SIGTERM)
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
