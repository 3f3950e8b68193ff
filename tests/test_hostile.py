"""Issue 9, findings 6, 7, 9, 10 and 11: hostile or impossible input gets a small 4xx, a
broken state directory a degraded start, a stepped clock a working store.

Each test fails on the code before the fix (the finding) and passes after it.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import io
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from actions_support import AUTH, TOKEN, alert, config, rig, until, webhook
from conftest import running
from prometheus_client import CollectorRegistry

from sidecar.actions import journal as journal_module
from sidecar.actions.breaker import MAX_HOLDERS
from sidecar.actions.journal import JOURNAL_FILE, Journal, StateDirLocked
from sidecar.cli import main
from sidecar.core import durable
from sidecar.core.config_load import load
from sidecar.core.errors import ConfigError
from sidecar.core.model import labelset
from sidecar.store import Store
from sidecar.supervisor import Sidecar

JSON = {"Content-Type": "application/json", **AUTH}


# -- finding 7: bounded answers and holders -----------------------------------------


async def test_a_flood_of_empty_alerts_gets_a_small_422_fast(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """340,000 empty alerts (1 MB) are refused with a 422 of a few hundred bytes, at once."""
    body = b'{"version":"4","alerts":[' + b",".join([b"{}"] * 340_000) + b"]}"
    assert len(body) < 1024 * 1024
    async with rig(tmp_path, registry) as r:
        started = time.monotonic()
        resp = await r.client.post("/alerts", data=io.BytesIO(body), headers=JSON)
        elapsed = time.monotonic() - started
        text = await resp.text()
        assert resp.status == 422
        assert len(text) < 2000, len(text)
        assert "alerts: expected array of length <= 1000" in text
        assert elapsed < 1.0
        assert r.calls() == []


async def test_many_unknown_keys_on_the_manual_api_get_a_small_422(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """100,000 unknown keys: the 422 names the first, and only it."""
    body = json.dumps({f"k{i}": 1 for i in range(100_000)}).encode()
    async with rig(tmp_path, registry, server={"max_body_bytes": "4MiB"}) as r:
        resp = await r.client.post("/v1/circuit/break", data=io.BytesIO(body), headers=JSON)
        text = await resp.text()
        assert resp.status == 422
        assert len(text) < 2000, len(text)
        assert json.loads(text) == {
            "status": "error",
            "error": "invalid request body: k0: unknown key",
        }
        assert r.calls() == []


async def test_a_group_with_many_invalid_alerts_lists_ten_and_counts_the_rest(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Every alert invalid: one 422 listing ten of them and how many more there were."""
    bad = [{**alert(), "startsAt": 0} for _ in range(500)]
    async with rig(tmp_path, registry) as r:
        status, body = await r.post("/alerts", webhook(*bad))
        assert status == 422
        assert body["error"].count("startsAt") == 10
        assert body["error"].endswith("(and 490 more problems)")


async def test_holders_are_bounded_and_the_rest_counted(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Past MAX_HOLDERS distinct firing alerts, the circuit keeps no more and counts them."""
    async with rig(tmp_path, registry) as r:
        alerts = [alert(action="circuit_break", pod=f"p-{i}") for i in range(MAX_HOLDERS + 50)]
        for i in range(0, len(alerts), 25):
            status, _ = await r.post("/alerts", webhook(*alerts[i : i + 25]))
            assert status == 200
        await r.settle()
        assert len(r.path.breaker.state.holders) == MAX_HOLDERS
        assert r.metric("leak_sidecar_circuit_holders_dropped_total") == 50.0
        resp = await r.client.get("/v1/circuit")
        assert len(await resp.read()) < 200_000


# -- finding 9: 500s that must be 4xx ------------------------------------------------


async def test_a_time_outside_pythons_range_refuses_that_alert_only(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """0001-01-01T00:00:00+00:01 is valid RFC 3339 but before year 1 in UTC: that alert is
    refused (422 in the answer), the other alert of the group still breaks the circuit,
    and the journal still replays."""
    odd = {**alert("Odd", action="circuit_break"), "startsAt": "0001-01-01T00:00:00+00:01"}
    good = alert("Good", action="circuit_break")
    async with rig(tmp_path, registry) as r:
        status, body = await r.post("/alerts", webhook(odd, good))
        assert status == 200, body
        assert body["alerts"] == 1
        assert [a["action"] for a in body["actions"]] == ["circuit_break"]
        assert body["refused_count"] == 1
        assert body["refused"][0]["index"] == 0
        assert body["refused"][0]["status"] == 422
        assert "startsAt" in body["refused"][0]["error"]
        await r.settle()
        assert len(r.calls("/v1/circuit/break")) == 1
        journal = r.path.journal.path
    # The journal reads back whole: a restart would not crash on it.
    assert list(Journal(journal.parent, CollectorRegistry()).replay())


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01"])
async def test_a_lone_out_of_range_alert_is_a_422(
    tmp_path: Path, registry: CollectorRegistry, when: str
) -> None:
    """When every alert of the group is refused, the answer is 422, and it is counted."""
    async with rig(tmp_path, registry) as r:
        status, body = await r.post("/alerts", webhook({**alert(), "startsAt": when}))
        assert status == 422
        assert "alerts.0.startsAt: time out of range in UTC" in body["error"]
        assert r.metric("leak_sidecar_webhook_requests_total", code="422") == 1.0


async def test_a_non_utf8_authorization_header_is_401_and_counted(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Raw bytes that are not UTF-8 in Authorization: 401, never a 500; counted for /alerts."""
    async with rig(tmp_path, registry) as r:
        port = r.client.port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = json.dumps(webhook(alert())).encode()
        writer.write(
            b"POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer \xff\xfe\xc3(\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 401"), answer[:100]
        assert r.metric("leak_sidecar_webhook_requests_total", code="401") == 1.0
        assert r.metric("leak_sidecar_webhook_requests_total", code="500") is None


@pytest.mark.parametrize("encoding", ["deflate", "gzip"])
async def test_an_undecodable_compressed_body_is_400_and_counted(
    tmp_path: Path, registry: CollectorRegistry, encoding: str
) -> None:
    """A Content-Encoding whose body does not decode is the client's 400, never a 500."""
    async with rig(tmp_path, registry) as r:
        resp = await r.client.post(
            "/alerts",
            data=b"this is not " + encoding.encode(),
            headers={**JSON, "Content-Encoding": encoding},
        )
        assert resp.status == 400
        assert (await resp.json())["status"] == "error"
        assert r.metric("leak_sidecar_webhook_requests_total", code="400") == 1.0
        # A valid compressed body still works.
        raw = json.dumps(webhook(alert())).encode()
        packed = zlib.compress(raw) if encoding == "deflate" else _gzip(raw)
        resp = await r.client.post(
            "/alerts", data=packed, headers={**JSON, "Content-Encoding": encoding}
        )
        assert resp.status == 200


def _gzip(data: bytes) -> bytes:
    import gzip  # noqa: PLC0415

    return gzip.compress(data)


async def test_every_answer_of_alerts_is_counted(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """401, 413, 415, 422 and 200 all appear in leak_sidecar_webhook_requests_total."""
    async with rig(tmp_path, registry) as r:
        post = r.client.post
        await post("/alerts", data=b"{}", headers={"Content-Type": "application/json"})
        await post("/alerts", data=io.BytesIO(b"x" * (2 * 1024 * 1024)), headers=JSON)
        await post("/alerts", data=b"{}", headers={**AUTH, "Content-Type": "text/plain"})
        await post("/alerts", data=b"{}", headers=JSON)
        await post("/alerts", data=json.dumps(webhook(alert())).encode(), headers=JSON)
        for code in ("401", "413", "415", "422", "200"):
            assert r.metric("leak_sidecar_webhook_requests_total", code=code) == 1.0, code


async def test_content_length_past_the_cap_is_refused_before_reading(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Content-Length: 10^12 is answered 413 at once, without waiting for the body."""
    async with rig(tmp_path, registry) as r:
        reader, writer = await asyncio.open_connection("127.0.0.1", r.client.port)
        writer.write(
            b"POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {TOKEN}\r\n".encode()
            + b"Content-Length: 1000000000000\r\n\r\n{"
        )
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 2)
        writer.close()
        assert line.startswith(b"HTTP/1.1 413"), line


# -- finding 11: loose types ---------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("truncatedAlerts", "1", "truncatedAlerts: expected int, got str"),
        ("truncatedAlerts", 1.0, "truncatedAlerts: expected int, got float"),
        ("truncatedAlerts", True, "truncatedAlerts: expected int, got bool"),
    ],
)
async def test_webhook_numbers_are_strict(
    tmp_path: Path, registry: CollectorRegistry, field: str, value: Any, where: str
) -> None:
    """A count written as a string, a float or a boolean is a 422."""
    async with rig(tmp_path, registry) as r:
        status, body = await r.post("/alerts", webhook(alert(), **{field: value}))
        assert status == 422
        assert where in body["error"]


@pytest.mark.parametrize("starts", [0, 1_700_000_000, 1.5e9, True, "0", "1700000000", "2023-11-14"])
async def test_webhook_times_are_strings(
    tmp_path: Path, registry: CollectorRegistry, starts: Any
) -> None:
    """startsAt as a number (seconds since the epoch?) is refused: RFC 3339 only."""
    async with rig(tmp_path, registry) as r:
        status, body = await r.post("/alerts", webhook({**alert(), "startsAt": starts}))
        assert status == 422
        assert "alerts.0.startsAt: expected an RFC 3339 time string" in body["error"]
        assert r.calls() == []


@pytest.mark.parametrize(
    ("path", "body", "problem"),
    [
        ("/v1/circuit/break", {"hold": "yes"}, "hold: expected bool, got str"),
        ("/v1/circuit/break", {"hold": 1}, "hold: expected bool, got int"),
        ("/v1/circuit/break", {"reason": 5}, "reason: expected str, got int"),
        ("/v1/circuit/reset", {"reason": ["x"]}, "reason: expected str, got array"),
        ("/v1/cache/flush", {"reason": True}, "reason: expected str, got bool"),
    ],
)
async def test_manual_bodies_are_strict(
    tmp_path: Path, registry: CollectorRegistry, path: str, body: dict[str, Any], problem: str
) -> None:
    """The operator API takes booleans and strings as such, nothing that looks like one."""
    async with rig(tmp_path, registry) as r:
        status, answer = await r.post(path, body)
        assert (status, answer) == (
            422,
            {"status": "error", "error": f"invalid request body: {problem}"},
        )
        assert r.calls() == []


def _config(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "sidecar.yaml"
    path.write_text(text)
    try:
        load(path, {})
    except ConfigError as exc:
        return exc.problems
    return []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "server: {listen: '127.0.0.1:9120', allow_unauthenticated: 'yes'}",
            "server.allow_unauthenticated: expected bool, got 'yes'",
        ),
        ("breaker: {dry_run: 1}", "breaker.dry_run: expected bool, got 1"),
        ("breaker: {dry_run: 'true'}", "breaker.dry_run: expected bool, got 'true'"),
        ("store: {max_series: '100'}", "store.max_series: expected int, got '100'"),
        ("breaker: {jitter: '0.1'}", "breaker.jitter: expected float, got '0.1'"),
        ("state_dir: ''", "state_dir: expected a directory path, got ''"),
        (
            "server: {listen: '127.0.0.1:9120', shutdown_grace: 3s}\nactions: {drain_timeout: 5s}",
            "server.shutdown_grace: must not be below actions.drain_timeout (5s), got 3s",
        ),
    ],
)
def test_config_is_strict(tmp_path: Path, text: str, problem: str) -> None:
    """check-config refuses loose booleans and numbers, an empty state_dir, and a grace
    shorter than the drain it must hold, naming both keys."""
    assert _config(tmp_path, text) == [problem]


def test_check_config_exits_2_on_a_loose_boolean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`leak-sidecar check-config` says which key and exits 2."""
    path = tmp_path / "sidecar.yaml"
    path.write_text("breaker: {dry_run: 1}\n")
    assert main(["check-config", str(path)], env={}) == 2
    assert "breaker.dry_run" in capsys.readouterr().err


def test_wrongly_shaped_journal_entries_are_counted(tmp_path: Path) -> None:
    """A JSON line that is no known entry is skipped and counted as corrupt."""
    (tmp_path / JOURNAL_FILE).write_bytes(b'{"type":"decision","version":2,"at":"soon"}\n')
    registry = CollectorRegistry()
    assert list(Journal(tmp_path, registry).replay()) == []
    assert registry.get_sample_value("leak_sidecar_journal_corrupt_lines_total") == 1.0


async def test_a_second_sidecar_on_the_same_state_directory_is_refused(tmp_path: Path) -> None:
    """Two sidecars on one state directory would rewrite each other's journal: the second
    one refuses to start, naming the directory."""
    cfg = config(tmp_path / "state", "http://127.0.0.1:9", rules={"files": []})
    async with running(Sidecar(cfg, registry=CollectorRegistry())):
        with pytest.raises(StateDirLocked, match="is in use by another leak-sidecar"):
            await Sidecar(cfg, registry=CollectorRegistry()).run(asyncio.Event())
    # Released at stop: the next one starts.
    async with running(Sidecar(cfg, registry=CollectorRegistry())):
        pass


def _run_on(state: Path) -> subprocess.CompletedProcess[bytes]:
    """`leak-sidecar run` with ``state`` as its state directory, as a real process (`run`
    configures logging for the process, not for a test), without the environment's
    LEAK_SIDECAR_ settings."""
    config = state.parent / "sidecar.yaml"
    config.write_text(
        f"server: {{listen: '127.0.0.1:0'}}\nstate_dir: {state}\nrules: {{files: []}}\n"
        "app: {base_url: 'http://127.0.0.1:9'}\nlog: {format: json}\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "sidecar", "run", "--config", str(config)],
        capture_output=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("LEAK_SIDECAR_")},
    )


def test_run_exits_2_when_the_state_directory_is_taken(tmp_path: Path) -> None:
    """`leak-sidecar run` on a locked state directory: a clear message and exit code 2."""
    state = tmp_path / "state"
    state.mkdir()
    fd = os.open(state, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = _run_on(state)
        assert done.returncode == 2, done.stderr[-2000:]
        assert f"state_dir: {state} is in use by another leak-sidecar".encode() in done.stderr
    finally:
        os.close(fd)


def test_run_exits_2_when_the_journal_cannot_be_read(tmp_path: Path) -> None:
    """A journal that cannot be read (here a directory in its place) holds protections
    that starting without it would drop: `run` refuses with one line and exit code 2, not
    a traceback and 1."""
    state = tmp_path / "state"
    (state / JOURNAL_FILE).mkdir(parents=True)
    done = _run_on(state)
    assert done.returncode == 2, done.stderr[-2000:]
    journal = state / JOURNAL_FILE
    assert done.stderr.decode().splitlines() == [
        f"state_dir: cannot read journal {journal}: [Errno 21] Is a directory: '{journal}'; "
        "fix or move it away"
    ]
    assert b"Traceback" not in done.stdout + done.stderr
    assert b"sidecar.crashed" not in done.stdout


# -- finding 6: a full or read-only state directory ----------------------------------


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Every journal write fails with ENOSPC while the flag is up."""
    full = [True]
    real_append, real_atomic = durable.append_durably, durable.write_atomic

    def append_durably(fd: int, data: bytes) -> None:
        if full[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_append(fd, data)

    def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
        if full[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_atomic(path, data, mode)

    monkeypatch.setattr(journal_module, "append_durably", append_durably)
    monkeypatch.setattr(journal_module, "write_atomic", write_atomic)
    return full


async def test_a_full_state_directory_starts_degraded_and_recovers(
    tmp_path: Path, full_disk: list[bool]
) -> None:
    """Startup compaction fails (disk full): the sidecar still starts, refuses actions with
    a counted 503, /readyz says why, and once space returns it acts again."""
    state = tmp_path / "state"
    state.mkdir()
    (state / JOURNAL_FILE).write_bytes(b"")
    registry = CollectorRegistry()
    cfg = config(
        state,
        "http://127.0.0.1:9",
        rules={"files": []},
        breaker={"check_interval": "100ms", "dry_run": True},
    )
    async with running(Sidecar(cfg, registry=registry)) as sidecar, aiohttp.ClientSession() as s:
        url = f"http://127.0.0.1:{sidecar.port}"
        async with s.get(f"{url}/readyz") as resp:
            ready = await resp.json()
        assert resp.status == 200
        assert ready["detail"].startswith("degraded, actions refused: cannot compact the journal")
        assert registry.get_sample_value("leak_sidecar_journal_writable") == 0.0
        body = webhook(alert(action="circuit_break"))
        async with s.post(f"{url}/alerts", json=body) as resp:
            assert resp.status == 503
        async with s.post(f"{url}/v1/cache/flush") as resp:
            assert resp.status == 503
        assert registry.get_sample_value("leak_sidecar_webhook_requests_total", {"code": "503"})
        assert (registry.get_sample_value("leak_sidecar_journal_write_failures_total") or 0) >= 3
        full_disk[0] = False  # space returns
        await until(lambda: registry.get_sample_value("leak_sidecar_journal_writable") == 1.0, 5)
        async with s.get(f"{url}/readyz") as resp:
            assert not (await resp.json())["detail"].startswith("degraded")
        async with s.post(f"{url}/alerts", json=body) as resp:
            assert resp.status == 200


# -- finding 10: the clock steps back ------------------------------------------------


def test_a_backward_clock_step_is_detected_counted_and_the_store_keeps_working() -> None:
    """After the wall clock steps back an hour, new samples are kept again (not dropped as
    older than the last), the samples from the 'future' are dropped, and the step counted."""
    registry = CollectorRegistry()
    a = labelset({"__name__": "a"})
    st = Store(retention_ms=3_600_000, max_series=10, registry=registry)
    t0 = 1_700_000_000_000
    for i in range(10):
        st.ingest(t0 + i * 15_000, {a: float(i)})
    back = t0 + 9 * 15_000 - 3_600_000
    st.ingest(back, {a: 100.0})
    st.ingest(back + 15_000, {a: 101.0})
    assert dict(st.latest()) == {a: 101.0}
    series = st.get(a)
    assert series is not None
    ts, _, i, j = series.window(-(2**63), 2**63 - 1)
    assert list(ts[i:j]) == [back, back + 15_000]
    assert registry.get_sample_value("leak_sidecar_clock_steps_total") == 1.0


def test_a_small_step_back_keeps_the_older_history() -> None:
    """A step of 20s back drops only the samples after the new time."""
    a = labelset({"__name__": "a"})
    st = Store(retention_ms=3_600_000, max_series=10)
    for t in (0, 15_000, 30_000, 45_000):
        st.ingest(t, {a: float(t)})
    st.ingest(25_000, {a: -1.0})
    series = st.get(a)
    assert series is not None
    ts, vs, i, j = series.window(-(2**63), 2**63 - 1)
    assert list(zip(ts[i:j], vs[i:j], strict=True)) == [(0, 0.0), (15_000, 15000.0), (25_000, -1.0)]


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"])
async def test_the_extreme_valid_times_are_served_and_replayed(tmp_path: Path, when: str) -> None:
    """An alert at the very edge of the range breaks the circuit; the API, the status page
    and a restart that replays its journal all work."""
    cfg = config(
        tmp_path / "state",
        "http://127.0.0.1:9",
        rules={"files": []},
        breaker={"dry_run": True},
        server={"listen": "127.0.0.1:0", "allow_unauthenticated": True},
    )
    body = webhook({**alert("Edge", action="circuit_break"), "startsAt": when})
    for _ in range(2):  # the second run replays the first one's journal
        registry = CollectorRegistry()
        async with (
            running(Sidecar(cfg, registry=registry)) as sidecar,
            aiohttp.ClientSession() as s,
        ):
            url = f"http://127.0.0.1:{sidecar.port}"
            async with s.post(f"{url}/alerts", json=body) as resp:
                assert resp.status == 200, await resp.text()
            for path in ("/v1/circuit", "/", "/v1/alerts", "/metrics", "/readyz"):
                async with s.get(url + path) as resp:
                    assert resp.status == 200, (path, await resp.text())
            async with s.get(f"{url}/v1/circuit") as resp:
                assert (await resp.json())["state"] == "open"


async def test_a_crash_in_the_handler_is_a_counted_json_500(
    tmp_path: Path, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug behind /alerts answers a JSON 500, which is counted like every other answer."""
    async with rig(tmp_path, registry) as r:

        async def broken(*_: object) -> None:
            raise RuntimeError("a bug")

        monkeypatch.setattr(r.path.receiver, "deliver", broken)
        status, body = await r.post("/alerts", webhook(alert()))
        assert (status, body["status"]) == (500, "error")
        assert r.metric("leak_sidecar_webhook_requests_total", code="500") == 1.0
