"""Helpers for the outbound tests: an app that demands credentials, certificates from openssl."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

VARS = b'{"cache_keys_total": 42, "memstats": {"NumGC": 3}}'

_CNF = "[req]\ndistinguished_name=dn\nprompt=no\n[dn]\nCN=x\n"


@dataclass
class AuthApp:
    """A stand-in app: expvar and the action endpoints, behind ``expected`` Authorization.

    ``seen`` holds the Authorization header of every request (None when absent), in order.
    """

    expected: str | None
    seen: list[tuple[str, str | None]] = field(default_factory=list)
    echo: bool = False
    """Answer 401 with the received header in the body, as a careless app might."""

    def _allowed(self, request: web.Request) -> bool:
        got = request.headers.get("Authorization")
        self.seen.append((request.path, got))
        return self.expected is None or got == self.expected

    def _refuse(self, request: web.Request) -> web.Response:
        text = f"bad credentials: {request.headers.get('Authorization')}" if self.echo else ""
        return web.Response(status=401, text=text or "unauthorized")

    async def vars(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return self._refuse(request)
        return web.Response(body=VARS, content_type="application/json")

    async def action(self, request: web.Request) -> web.Response:
        await request.read()
        if not self._allowed(request):
            return self._refuse(request)
        return web.json_response({"ok": True})

    def calls(self, path: str) -> int:
        """Requests received on ``path``, refused ones included."""
        return sum(1 for p, _ in self.seen if p == path)


@asynccontextmanager
async def serving(app: AuthApp, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """Serve ``app`` on 127.0.0.1, a free port; yields the port once it listens."""
    web_app = web.Application()
    web_app.router.add_get("/debug/vars", app.vars)
    for path in ("/v1/circuit/break", "/v1/circuit/reset", "/v1/cache/flush"):
        web_app.router.add_post(path, app.action)
    runner = web.AppRunner(web_app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    try:
        port: int = runner.addresses[0][1]
        yield port
    finally:
        await runner.cleanup()


@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate for ``app.test`` (no IP in it), a client certificate,
    and a second, unrelated CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path

    def server_context(self, *, client_cert_required: bool = False) -> ssl.SSLContext:
        """What the app serves with; with mTLS it demands a client certificate of ``ca``."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        if client_cert_required:
            ctx.load_verify_locations(self.ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(
        ["openssl", "req", "-config", str(directory / "min.cnf"), "-x509", "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", *args],
        check=True, capture_output=True, cwd=directory,
    )  # fmt: skip


def make_pki(directory: Path) -> Pki:
    """Generate the certificates with the openssl command (``cryptography`` is not installed)."""
    # .ci/run installs openssl: a missing one is a broken set-up, not a reason to skip.
    assert shutil.which("openssl") is not None, "the openssl command makes the test certificates"
    (directory / "min.cnf").write_text(_CNF)
    ca_ext = [
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]
    leaf = ["-addext", "basicConstraints=critical,CA:FALSE"]
    _openssl(directory, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=test-ca", *ca_ext)
    _openssl(directory, "-keyout", "other.key", "-out", "other.pem", "-subj", "/CN=other", *ca_ext)
    signed = ["-CA", "ca.pem", "-CAkey", "ca.key", *leaf]
    _openssl(
        directory, "-keyout", "server.key", "-out", "server.pem", "-subj", "/CN=app.test",
        *signed, "-addext", "subjectAltName=DNS:app.test",
        "-addext", "extendedKeyUsage=serverAuth",
    )  # fmt: skip
    _openssl(
        directory, "-keyout", "client.key", "-out", "client.pem", "-subj", "/CN=sidecar",
        *signed, "-addext", "extendedKeyUsage=clientAuth",
    )  # fmt: skip
    d = directory
    return Pki(
        d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key",
        d / "other.pem",
    )  # fmt: skip
