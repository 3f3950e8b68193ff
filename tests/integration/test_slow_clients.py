"""Slow and idle clients against the real command (issue 9, finding 8).

A thousand connections that send nothing, half a request line or half a body must not
starve the probes: /healthz answers within 100 ms while they are open. A client that
does not finish its headers is cut off after ``server.header_timeout``, one that does
not finish its body gets a 408 after ``server.body_timeout``, and a Content-Length past
the cap is refused before the body is read.
"""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_support import TOKEN, LiveSidecar, StubApp, http, live_sidecar, request, stub_app

pytestmark = pytest.mark.integration

IDLE = 1000
PROBES = 20
PROBE_LIMIT = 0.1  # seconds


@pytest.fixture(scope="module")
def fd_limit() -> Iterator[None]:
    """Room for the test's own 1,000 sockets (and, inherited, the sidecar's)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 4096) if hard != resource.RLIM_INFINITY else 4096
    assert wanted >= IDLE + 200, f"the hard file descriptor limit ({hard}) is below {IDLE} sockets"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory, fd_limit: None) -> Iterator[LiveSidecar]:
    app: StubApp
    with (
        stub_app() as app,
        live_sidecar(
            tmp_path_factory.mktemp("slow"),
            app.url,
            header_timeout="2s",
            body_timeout="1s",
            max_connections=200,
        ) as live,
    ):
        yield live


def _open(port: int, first: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if first:
        sock.sendall(first)
    return sock


_STARTS = [
    b"",  # connects, sends nothing
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n",  # headers never finished
    b"GE",  # half a request line
    (
        b"POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n".encode()
        + b'{"version"'
    ),  # half a body
]


def test_healthz_stays_fast_with_a_thousand_idle_connections(sidecar: LiveSidecar) -> None:
    """1,000 idle or half-sent connections open: 20 probes each answer within 100 ms."""
    held = []
    try:
        for i in range(IDLE):
            held.append(_open(sidecar.port, _STARTS[i % len(_STARTS)]))
        slowest = 0.0
        for _ in range(PROBES):
            started = time.monotonic()
            status, body = request(sidecar.port, http("GET", "/healthz"), timeout=5)
            elapsed = time.monotonic() - started
            assert status == 200, body
            slowest = max(slowest, elapsed)
        assert slowest < PROBE_LIMIT, f"slowest /healthz took {slowest * 1000:.0f} ms"
        status, _ = request(sidecar.port, http("GET", "/metrics"), timeout=5)
        assert status == 200
    finally:
        for sock in held:
            sock.close()
    assert sidecar.proc.poll() is None


def test_unfinished_headers_are_cut_off_after_the_header_timeout(sidecar: LiveSidecar) -> None:
    """A connection that never finishes its request's headers is closed within
    header_timeout (2s here), not held for minutes."""
    socks = [_open(sidecar.port, start) for start in (b"", b"GET /healthz HTTP/1.1\r\n")]
    try:
        started = time.monotonic()
        for sock in socks:
            sock.settimeout(10)
            assert sock.recv(1024) == b""  # closed by the sidecar
        assert time.monotonic() - started < 5
    finally:
        for sock in socks:
            sock.close()


def test_an_unfinished_body_gets_a_408_after_the_body_timeout(sidecar: LiveSidecar) -> None:
    """Half a body, then silence: 408 within body_timeout (1s here), connection closed."""
    sock = _open(sidecar.port, _STARTS[3])
    try:
        sock.settimeout(10)
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert time.monotonic() - started < 5
    finally:
        sock.close()


def test_content_length_past_the_cap_is_refused_up_front(sidecar: LiveSidecar) -> None:
    """Content-Length: 10^12 is a 413 before any of the body is read."""
    sock = _open(
        sidecar.port,
        b"POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {10**12}\r\n\r\n".encode(),
    )
    try:
        sock.settimeout(5)
        started = time.monotonic()
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 413"), first[:200]
        assert time.monotonic() - started < 0.5
    finally:
        sock.close()


def test_the_connection_cap_closes_the_oldest_idle_connection(
    sidecar: LiveSidecar, tmp_path: Path
) -> None:
    """Past max_connections (200 here), the oldest idle connection is closed for the new."""
    first = _open(sidecar.port, b"")
    others = [_open(sidecar.port, b"") for _ in range(250)]
    try:
        first.settimeout(5)
        assert first.recv(1024) == b""  # evicted well before the header timeout
        status, _ = request(sidecar.port, http("GET", "/healthz"), timeout=5)
        assert status == 200
    finally:
        first.close()
        for sock in others:
            sock.close()
