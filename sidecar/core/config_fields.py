"""The value types of config fields: durations, URLs, paths, addresses, each with its check.

Each type is an ``Annotated`` pydantic type whose validator raises ``ValueError`` saying
what was expected and what came; ``config_load`` turns it into one ``key: problem``
line. The section models in ``config`` are built from these.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict

from sidecar.core.durations import parse_duration

__all__ = [
    "BaseUrl",
    "ConfigModel",
    "Duration",
    "Listen",
    "LocalPath",
    "Positive",
    "PositiveDuration",
    "RetryConfig",
    "StateDir",
    "Url",
    "UrlPath",
    "label_name",
]


def _duration(value: object) -> float:
    # ValueError, not TypeError: pydantic reports only ValueError as a validation error.
    # A YAML number is refused: 5 could mean seconds or milliseconds.
    try:
        if isinstance(value, str):
            return parse_duration(value)
    except ValueError as exc:
        if str(exc) == "duration out of range":
            raise ValueError(f"expected a duration up to 292y, got {value!r}") from None
    raise ValueError(f"expected a duration such as 15s, 10m or 1h30m, got {value!r}")


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {value!r}")
    return value.rstrip("/")


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.username is not None or parts.password is not None:
        # Not echoed: the point is to keep the password out of every output.
        shown = f"{parts.scheme}://***@{parts.netloc.rpartition('@')[2]}{parts.path}"
        raise ValueError(
            f"expected no user or password in the URL (it would show on the status page "
            f"and in logs), got {shown!r}; use app.http_config.basic_auth or authorization"
        )
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        shown = f"{parts.scheme}://{parts.netloc}{parts.path}"
        raise ValueError(
            f"expected no query string or fragment (paths are appended to the URL), "
            f"got {shown!r} followed by one"
        )
    return value


def _dir(value: object) -> object:
    # Path("") is the working directory: an empty value is a mistake, not a choice.
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"expected a directory path, got {value!r}")
    return value


def _path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"expected a path starting with '/', got {value!r}")
    return value


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise ValueError(f"expected host:port such as 0.0.0.0:9120, got {value!r}")
    return value


Duration = Annotated[float, BeforeValidator(_duration)]
"""Seconds, written in Prometheus's duration syntax (``15s``, ``1h30m``, ``0``)."""
PositiveDuration = Annotated[float, BeforeValidator(_duration), Field(gt=0)]
"""For intervals, timeouts and backoffs: zero would spin a loop or time out at once."""
Url = Annotated[str, AfterValidator(_url)]
"""An http(s) URL with a host; a trailing slash is dropped so that paths join cleanly."""
# Userinfo is refused first: the generic URL message would echo the password.
BaseUrl = Annotated[str, AfterValidator(_base_url), AfterValidator(_url)]
"""A ``Url`` that paths are appended to: no userinfo (credentials go in ``http_config``),
no query string or fragment."""
UrlPath = Annotated[str, AfterValidator(_path)]
Listen = Annotated[str, AfterValidator(_listen)]
"""``host:port`` to listen on."""
Positive = Annotated[int, Field(gt=0)]
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def label_name(name: str, key: str) -> str:
    """``name`` if it is a label name a user may set (Prometheus's, not ``__``-reserved);
    else ``ValueError`` naming ``key``."""
    if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
        raise ValueError(
            f"{key}: invalid label name {name!r}: expected [a-zA-Z_][a-zA-Z0-9_]* "
            "not starting with __"
        )
    return name


LocalPath = Annotated[Path, Strict(False)]
"""A file or directory path, written as a string: the one lax type of the strict models."""
StateDir = Annotated[Path, BeforeValidator(_dir), Strict(False)]
"""A directory the sidecar owns; an empty string is refused."""


class ConfigModel(BaseModel):
    """The base of every config section: frozen, no unknown keys, strict types."""

    # Strict: "yes", 1 or "1" is not a boolean, "5" not a number; a config that decides
    # outages says what it means. Paths are the one lax type (``LocalPath``).
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class RetryConfig(ConfigModel):
    """A bounded retry policy: exponential backoff with jitter, capped in attempts and time."""

    attempts: Positive = Field(3, description="Total tries, the first included.")
    initial_backoff: PositiveDuration = Field(0.1, description="Wait before the first retry.")
    max_backoff: PositiveDuration = Field(2.0, description="Cap on one wait, jitter included.")
    max_elapsed: PositiveDuration = Field(
        10.0, description="Give up once this much time has passed."
    )
