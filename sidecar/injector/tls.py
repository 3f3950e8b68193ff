"""The injector's serving certificate, from files re-read when they change.

cert-manager (or a Helm upgrade) renews the certificate by rewriting the mounted
Secret; the kubelet swaps the files in place. Every TLS handshake reads both files (a
few kilobytes; the API server keeps its connections open, so handshakes are rare) and,
when their content changed, the next handshakes are served with a context built from
them, without a restart. A pair that does not load (half-written, a key that does not
match) is logged and the last good one is kept: a rotation in progress finishes.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import structlog

from sidecar.core.errors import ConfigError

__all__ = ["ServingCertificate"]

log = structlog.get_logger(__name__)


class ServingCertificate:
    """``context`` is the server context to listen with; it hands every new connection
    the certificate now on disk. ``ConfigError`` at start when the files do not load."""

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.reloads = 0
        """Certificates taken up since start, the first one not counted."""
        try:
            self._seen = self._read()
            self._current = self._build()
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError([f"--tls.cert-file, --tls.key-file: {_why(exc)}"]) from None
        self.context = self._current
        self.context.sni_callback = self._hello

    def current(self) -> ssl.SSLContext:
        """The context of the files as they are now (the last good one if they do not load)."""
        try:
            seen = self._read()
            if seen == self._seen:
                return self._current
            ctx = self._build()
        except (OSError, ssl.SSLError) as exc:
            log.warning(
                "injector.certificate_reload_failed",
                cert_file=str(self.cert_file),
                key_file=str(self.key_file),
                error=_why(exc),
            )
            return self._current
        self._seen, self._current = seen, ctx
        self.reloads += 1
        log.info("injector.certificate_reloaded", cert_file=str(self.cert_file))
        return ctx

    def _read(self) -> tuple[bytes, bytes]:
        return self.cert_file.read_bytes(), self.key_file.read_bytes()

    def _build(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # The API server speaks TLS 1.2 and 1.3; older versions have no place here.
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def _hello(self, conn: ssl.SSLObject, server_name: str | None, base: ssl.SSLContext) -> None:
        # Called for every ClientHello, server name or not: the moment a connection can
        # still be given another certificate.
        ctx = self.current()
        if conn.context is not ctx:
            conn.context = ctx


def _why(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"not a certificate and its private key: {exc.reason or exc}"
    where = f" {exc.filename}" if exc.filename else ""
    return f"cannot read{where}: {exc.strerror or exc}"
