"""``app.http_config``: how the sidecar authenticates to the app, in Prometheus's shape.

The subset of Prometheus's ``http_config`` that a sidecar on a pod's loopback (or on a
TLS port of its app) needs, with Prometheus's key names and validation rules:
``authorization`` (``type``, ``credentials`` or ``credentials_file``), ``basic_auth``
(``username``, ``password`` or ``password_file``), ``tls_config`` (``ca_file``,
``cert_file``, ``key_file``, ``server_name``, ``insecure_skip_verify``). Unlike
Prometheus, files are checked at load (readable, not empty, a certificate that matches
its key), so that ``check-config`` finds a missing secret before the first break is
needed; they are read again on use by ``core.outbound`` when they change.

``read_secret`` and ``ssl_context`` are the one place a secret file or a TLS context is
read and built, for the load-time check here and for every call in ``core.outbound``.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path, PosixPath
from typing import Self

from msgspec import field

from sidecar.core.config_fields import ConfigModel, Matching, Plain, Secret, expect_str
from sidecar.core.validation import path_text

__all__ = [
    "AuthorizationConfig",
    "BasicAuthConfig",
    "HttpClientConfig",
    "TlsConfig",
    "read_secret",
    "ssl_context",
]

# RFC 9110 token: what an auth-scheme may be made of (no space, no CR/LF: no header injection).
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def read_secret(path: Path) -> str:
    """The stripped content of a secret file; ``ValueError`` saying why when unusable.

    Whitespace around the secret is dropped, as Prometheus does (an editor's final
    newline is not part of a token); an empty file is an error, never "no auth".
    """
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"expected UTF-8 text in {path}") from None
    if not text:
        raise ValueError(f"{path} is empty")
    if "\n" in text or "\r" in text:
        raise ValueError(f"expected one line in {path}, got several")
    return text


class SecretFile(Plain, PosixPath):
    """A file holding one secret line, read again whenever it changes."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Self:
        path = cls(path_text(value))
        read_secret(path)
        return path


class ReadableFile(Plain, PosixPath):
    """A file that can be opened now (a CA bundle, a certificate, a key)."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Self:
        path = cls(path_text(value))
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from None
        return path


class InlineSecret(Secret):
    """A secret written in the config itself: one line, not blank; never echoed."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Self:
        secret = super().parse(value).get_secret_value()
        if not secret.strip():
            raise ValueError("expected a secret, got an empty string")
        if "\n" in secret or "\r" in secret:
            raise ValueError("expected one line, got several")  # the value is not echoed
        return cls(secret)


class AuthScheme(Plain, str):
    """An auth scheme (``Bearer``), as RFC 9110 draws a token; never ``Basic``."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Self:
        text = expect_str(value)
        kind = text.strip()
        if not _TOKEN.match(kind):
            raise ValueError(f"expected an auth scheme such as Bearer, got {text!r}")
        if kind.lower() == "basic":
            raise ValueError(f"cannot be {text!r}, use basic_auth instead (as Prometheus)")
        return cls(kind)


class UserName(Plain, str):
    """A basic-auth user: not empty, no ':' (it ends the user) and no line break."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Self:
        text = expect_str(value)
        if not text:
            raise ValueError("expected str of length >= 1, got ''")
        if ":" in text or "\n" in text or "\r" in text:
            raise ValueError(f"expected no ':' or line break, got {text!r}")
        return cls(text)


class HostName(Matching):
    """A host name a server certificate names."""

    __slots__ = ()
    pattern = re.compile(r"[A-Za-z0-9.-]+")
    what = "a host name"


class AuthorizationConfig(ConfigModel, frozen=True):
    """``Authorization: <type> <credentials>`` on every call, as Prometheus's ``authorization``."""

    type: AuthScheme = AuthScheme("Bearer")
    """Prometheus's default; the app decides the scheme."""
    credentials: InlineSecret | None = None
    """Inline secret; prefer credentials_file, which can rotate."""
    credentials_file: SecretFile | None = None
    """Read again when it changes: a rotated token needs no restart."""

    def __post_init__(self) -> None:
        if self.credentials is not None and self.credentials_file is not None:
            raise ValueError(
                "at most one of credentials & credentials_file must be configured, got both"
            )
        if self.credentials is None and self.credentials_file is None:
            raise ValueError("one of credentials & credentials_file must be configured")


class BasicAuthConfig(ConfigModel, frozen=True):
    """HTTP basic authentication on every call, as Prometheus's ``basic_auth``."""

    username: UserName
    """No default: the app decides its users."""
    password: InlineSecret | None = None
    """Inline secret; prefer password_file, which can rotate."""
    password_file: SecretFile | None = None
    """Read again when it changes: a rotated password needs no restart."""

    def __post_init__(self) -> None:
        if self.password is not None and self.password_file is not None:
            raise ValueError("at most one of password & password_file must be configured, got both")
        if self.password is None and self.password_file is None:
            raise ValueError("one of password & password_file must be configured")


class TlsConfig(ConfigModel, frozen=True):
    """TLS to an ``https://`` app, as Prometheus's ``tls_config``."""

    ca_file: ReadableFile | None = None
    """None: the system's trust store, as Prometheus."""
    cert_file: ReadableFile | None = None
    """Client certificate, for mTLS."""
    key_file: ReadableFile | None = None
    """Its private key; with cert_file."""
    server_name: HostName | None = None
    """None: the host of app.base_url is what the certificate must name."""
    insecure_skip_verify: bool = False
    """Never by default: a break sent to an impostor protects nothing."""

    def __post_init__(self) -> None:
        if self.cert_file is not None and self.key_file is None:
            raise ValueError(f"cert_file {str(self.cert_file)!r} is set without key_file")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError(f"key_file {str(self.key_file)!r} is set without cert_file")
        if self.ca_file is not None or self.cert_file is not None:
            ssl_context(self)  # a certificate that does not match its key is found now

    @property
    def configured(self) -> bool:
        """Whether anything differs from the default (system trust store, verified)."""
        return (
            any((self.ca_file, self.cert_file, self.key_file, self.server_name))
            or self.insecure_skip_verify
        )


def ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    """A client context from ``tls``'s files as they are now; ``ValueError`` when unusable."""
    try:
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"no usable CA certificate in ca_file {str(tls.ca_file)!r}: {_why(exc)}"
        ) from None
    if tls.cert_file is not None and tls.key_file is not None:
        try:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"cert_file {str(tls.cert_file)!r} and key_file {str(tls.key_file)!r}: "
                f"not a certificate and its private key: {_why(exc)}"
            ) from None
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _why(exc: OSError | ssl.SSLError) -> str:
    return str(getattr(exc, "reason", None) or exc.strerror or exc)


class HttpClientConfig(ConfigModel, frozen=True):
    """Credentials and TLS for every call to the app: the scrape and the actions."""

    authorization: AuthorizationConfig | None = None
    """None: a pod's loopback is usually trusted; the app decides."""
    basic_auth: BasicAuthConfig | None = None
    """None, as authorization."""
    tls_config: TlsConfig = field(default_factory=TlsConfig)
    """Used only for an https:// app.base_url."""

    def __post_init__(self) -> None:
        if self.authorization is not None and self.basic_auth is not None:
            raise ValueError(
                "at most one of basic_auth & authorization must be configured, got both"
            )
