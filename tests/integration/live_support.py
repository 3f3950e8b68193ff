"""A real `leak-sidecar run` next to a recording stub app, and a raw HTTP/1.1 client.

For the hostile-input and slow-client suites: the sidecar is the real command in its own
process (its crash, exit or memory is observable), the app is a stub on loopback that
records every request it gets, and the client writes bytes exactly as given, so that
requests no well-behaved library would send can be sent.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TOKEN = "hostile-suite-token"


@dataclass
class StubApp:
    """The app: answers expvar, records every request as (method, path)."""

    url: str
    calls: list[tuple[str, str]] = field(default_factory=list)

    def actions(self) -> list[tuple[str, str]]:
        """Every request that is not the sidecar's scrape of /debug/vars."""
        return [c for c in self.calls if c != ("GET", "/debug/vars")]


@contextmanager
def stub_app() -> Iterator[StubApp]:
    """A threaded stub app on 127.0.0.1, a free port."""
    calls: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            calls.append((self.command, self.path))
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            body = b'{"requests": 1}' if self.path == "/debug/vars" else b"{}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _record

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield StubApp(f"http://127.0.0.1:{server.server_address[1]}", calls)
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class LiveSidecar:
    """The running command: its process, port and log."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def rss_bytes(self) -> int:
        """The process's resident set size now."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


@contextmanager
def live_sidecar(workdir: Path, app_url: str, **server: Any) -> Iterator[LiveSidecar]:
    """`leak-sidecar run` on 127.0.0.1, a free port, until the block ends (then SIGTERM)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "sidecar.yaml"
    raw = {
        "app": {"base_url": app_url},
        "scrape": {"interval": "1s", "timeout": "500ms", "retry": {"attempts": 1}},
        "rules": {"files": []},
        "server": {"listen": "127.0.0.1:0", **server},
        "state_dir": str(workdir / "state"),
        "log": {"format": "json", "level": "info"},
    }
    config.write_text(json.dumps(raw))  # JSON is YAML
    log = workdir / "sidecar.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAK_SIDECAR_")}
    env["LEAK_SIDECAR_TOKEN"] = TOKEN
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    assert proc.stdout is not None
    out = log.open("wb")
    copier: threading.Thread | None = None
    try:
        port = _wait_started(proc, out)
        copier = threading.Thread(target=_copy, args=(proc, out), daemon=True)
        copier.start()
        yield LiveSidecar(proc, port, log)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if copier is not None:
            copier.join(timeout=10)
        proc.stdout.close()
        out.close()


def _wait_started(proc: subprocess.Popen[bytes], out: Any) -> int:
    assert proc.stdout is not None
    timer = threading.Timer(30, proc.kill)  # a sidecar that never starts fails the test
    timer.start()
    try:
        while True:
            line = proc.stdout.readline()
            assert line, "the sidecar exited before it started"
            out.write(line)
            event = json.loads(line)
            if event["event"] == "sidecar.started":
                return int(event["listen"].rpartition(":")[2])
    finally:
        timer.cancel()


def _copy(proc: subprocess.Popen[bytes], out: Any) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        out.write(line)


def request(port: int, raw: bytes, timeout: float = 10.0) -> tuple[int | None, bytes]:
    """Send ``raw`` as is on a new connection; the status (None: closed unanswered) and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # It may answer and close before the whole request was sent.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    data = b"".join(chunks)
    if not data.startswith(b"HTTP/1.1 "):
        return None, data
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head[9:12]), body


def http(
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, bytes] | None = None,
    *,
    content_length: int | None = None,
) -> bytes:
    """A whole HTTP/1.1 request as bytes; header values are bytes, sent as they are."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(name.encode() + b": " + value)
    length = len(body) if content_length is None else content_length
    if body or content_length is not None:
        lines.append(f"Content-Length: {length}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
