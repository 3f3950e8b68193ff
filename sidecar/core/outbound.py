"""Credentials and TLS for every call to the app, from files re-read when they change.

The scrape, the actions (and any other call to the app) build their requests through
one ``Outbound``: ``prepare()`` gives the per-request ``Authorization`` header and the
TLS settings; ``request()`` opens a request on the process's one ``ClientSession``
with them. The session itself carries no credentials: it also talks to Alertmanager,
which must never see the app's token.

Files are read on every use (a secret is a few bytes, a certificate a few kilobytes; a
call goes out every scrape interval): a token rotated on disk (a Kubernetes Secret swaps
a symlink) is sent by the very next call, without a restart, a timer, or trusting
mtimes that a fast rewrite may not change. The SSL context is rebuilt only when a TLS
file's content changed. A file that is gone, empty or half-written raises
``CredentialsError`` for that call only, a transient failure: the rotation finishes.
``SecretReader`` is also how the sidecar's own server re-reads ``server.token_file``;
there it guards every request, so it reads again only when the file's identity (inode,
size, mtime) changed or its last read is ``max_age`` old: a stat per request instead of
an open and a read, and a same-size rewrite within one mtime tick still applies within
``max_age``.
"""

from __future__ import annotations

import base64
import os
import ssl
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from sidecar.core.config_fields import Secret
from sidecar.core.config_http import HttpClientConfig, TlsConfig, read_secret, ssl_context
from sidecar.core.errors import CredentialsError

__all__ = ["Outbound", "Prepared", "SecretReader"]

log = structlog.get_logger(__name__)

_REDACTED = "<secret>"


@dataclass(frozen=True, slots=True)
class Prepared:
    """What one request to the app carries besides its own headers."""

    headers: Mapping[str, str] = field(repr=False)  # holds the secret: never in a repr
    ssl: ssl.SSLContext | bool
    """A context built from ``tls_config``, or True: aiohttp's verified default."""
    server_hostname: str | None


def _read(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CredentialsError(key, f"{key}: cannot read {path}: {exc.strerror}") from exc


class SecretReader:
    """One secret file, read on every use: a few bytes, and never a stale token.

    ``key`` is the config key naming the file; ``initial`` the value read at load, so
    that a change since then is logged as a reload.
    """

    def __init__(
        self,
        path: Path,
        key: str,
        *,
        initial: str | None = None,
        max_age: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.key = key
        self._value: str | None = initial
        self._max_age = max_age
        self._clock = clock
        self._seen: tuple[int, int, int] | None = None  # the file read last: ino, size, mtime
        self._read_at = 0.0

    def value(self) -> str:
        now = self._clock()
        seen = None
        if self._max_age > 0:
            try:
                st = os.stat(self.path)
                seen = (st.st_ino, st.st_size, st.st_mtime_ns)
            except OSError:
                seen = None  # read below, and fail there with the reason
            fresh = now - self._read_at < self._max_age
            if seen is not None and seen == self._seen and fresh and self._value is not None:
                return self._value
        try:
            value = read_secret(self.path)
        except ValueError as exc:
            raise CredentialsError(self.key, f"{self.key}: {exc}") from exc
        if self._value is not None and value != self._value:
            log.info("outbound.reloaded", key=self.key, path=str(self.path))
        self._value, self._seen, self._read_at = value, seen, now
        return value

    def current(self) -> str | None:
        """The secret now; while the file cannot be read (a rotation in progress), the
        last one read: a server checking what it is sent never goes without."""
        try:
            return self.value()
        except CredentialsError as exc:
            log.warning("outbound.reload_failed", key=self.key, error=str(exc))
            return self._value


class _Tls:
    """The SSL context of ``tls_config``, built again when one of its files changed.

    The files are compared by content, not by mtime: a rewrite within the file system's
    timestamp granularity is still seen. An unchanged context keeps its pooled connections.
    """

    def __init__(self, tls: TlsConfig, key: str) -> None:
        self.tls = tls
        self.key = key
        self._files = {
            f"{key}.{name}": path
            for name, path in (
                ("ca_file", tls.ca_file),
                ("cert_file", tls.cert_file),
                ("key_file", tls.key_file),
            )
            if path is not None
        }
        self._seen: tuple[bytes, ...] | None = None
        self._ctx: ssl.SSLContext | None = None

    def context(self) -> ssl.SSLContext:
        seen = tuple(_read(path, k) for k, path in self._files.items())
        if self._ctx is None or seen != self._seen:
            try:
                ctx = ssl_context(self.tls)
            except ValueError as exc:
                raise CredentialsError(self.key, f"{self.key}: {exc}") from exc
            if self._ctx is not None:
                log.info("outbound.reloaded", key=self.key, files=sorted(self._files))
            self._seen, self._ctx = seen, ctx
        return self._ctx


class Outbound:
    """Per-request credentials and TLS for calls to the app, from ``app.http_config``.

    ``key`` is the config path of ``cfg``, used in error messages and logs.
    """

    def __init__(self, cfg: HttpClientConfig, *, key: str = "app.http_config") -> None:
        self._key = key
        self.reconfigure(cfg)
        # Header values sent so far (the current and the one before a rotation), for redact().
        self._sent: list[str] = []

    def reconfigure(self, cfg: HttpClientConfig) -> None:
        """Use ``cfg`` from the next request on (a reload); what was sent stays redacted."""
        key = self._key
        self._cfg = cfg
        auth, basic = cfg.authorization, cfg.basic_auth
        self._token: SecretReader | None = None
        self._password: SecretReader | None = None
        if auth is not None and auth.credentials_file is not None:
            self._token = SecretReader(
                auth.credentials_file, f"{key}.authorization.credentials_file"
            )
        if basic is not None and basic.password_file is not None:
            self._password = SecretReader(basic.password_file, f"{key}.basic_auth.password_file")
        tls = cfg.tls_config
        self._tls = _Tls(tls, f"{key}.tls_config") if tls.configured else None
        self._server_name = tls.server_name

    def prepare(self) -> Prepared:
        """Headers and TLS settings for one request now; ``CredentialsError`` if unusable."""
        value = self._authorization()
        headers = {} if value is None else {"Authorization": value}
        ctx: ssl.SSLContext | bool = True if self._tls is None else self._tls.context()
        return Prepared(headers, ctx, self._server_name)

    def request(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """``session.request`` with this config's credentials and TLS.

        Raises ``CredentialsError`` at once when a file is unusable; nothing is sent then.
        """
        prepared = self.prepare()
        if prepared.server_hostname is not None:
            kwargs["server_hostname"] = prepared.server_hostname
        return session.request(
            method, url, headers={**(headers or {}), **prepared.headers}, ssl=prepared.ssl, **kwargs
        )

    def redact(self, text: str) -> str:
        """``text`` with every credential this object sent replaced: an app that echoes
        the header in an error body must not put the secret in our logs or answers."""
        for secret in self._secrets():
            text = text.replace(secret, _REDACTED)
        return text

    def _secrets(self) -> list[str]:
        out: list[str] = []
        for value in self._sent:
            out.append(value)
            scheme, _, rest = value.partition(" ")
            if rest:
                out.append(rest)
                if scheme == "Basic":
                    user_pass = base64.b64decode(rest).decode("utf-8", "replace")
                    out.append(user_pass.partition(":")[2])
        return sorted({s for s in out if s}, key=len, reverse=True)

    def _authorization(self) -> str | None:
        auth, basic = self._cfg.authorization, self._cfg.basic_auth
        if auth is not None:
            secret = self._token.value() if self._token else _inline(auth.credentials)
            value = f"{auth.type} {secret}"
        elif basic is not None:
            password = self._password.value() if self._password else _inline(basic.password)
            # RFC 7617, UTF-8 (aiohttp's BasicAuth is deprecated).
            user_pass = f"{basic.username}:{password}".encode()
            value = "Basic " + base64.b64encode(user_pass).decode("ascii")
        else:
            return None
        if not self._sent or self._sent[-1] != value:
            self._sent = [*self._sent[-1:], value]
        return value


def _inline(secret: Secret | None) -> str:
    # Validated at load: exactly one of the inline value and the file is set.
    assert secret is not None
    return secret.get_secret_value()
