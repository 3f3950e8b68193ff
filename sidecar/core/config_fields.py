"""The value types of config fields: durations, URLs, paths, sizes, secrets, each with its check.

Each type is a ``core.validation.Checked`` whose ``parse`` raises ``ValueError`` saying
what was expected and what came; ``config_load`` turns it into one ``key: problem``
line. A plain ``Path`` (a file the config names) is the one lax conversion, done by
``core.validation`` itself. The section models in ``config`` are built from these.
"""

from __future__ import annotations

import re
from pathlib import PosixPath
from typing import Annotated, Any, ClassVar, Self, cast
from urllib.parse import urlsplit

import msgspec

from sidecar.core.durations import parse_duration
from sidecar.core.errors import clip
from sidecar.core.validation import Checked, Model

__all__ = [
    "BaseUrl",
    "ByteSize",
    "ConfigModel",
    "Duration",
    "Listen",
    "Matching",
    "Plain",
    "Positive",
    "PositiveDuration",
    "RetryConfig",
    "Secret",
    "StateDir",
    "Url",
    "UrlPath",
    "expect_str",
    "label_name",
]


def expect_str(value: object) -> str:
    """``value`` if it is a string; else ``ValueError`` in ``Problem``'s words for one."""
    if isinstance(value, str):
        return value
    raise ValueError(f"expected str, got {clip(repr(value), 80)}")


_BUILTINS = (str, float, int, PosixPath)


class _PlainType(type):
    # msgspec checks that a hook's value is an instance of the field's type: any value of
    # the builtin is (it was made by ``parse``, which checked it).
    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, next(b for b in cls.__mro__ if b in _BUILTINS))


class Plain(Checked, metaclass=_PlainType):
    """A ``Checked`` type whose values are the builtin it refines: ``Url("http://x")`` is
    the str ``"http://x"``, ``Duration(5.0)`` the float ``5.0``.

    The class converts and checks, and names the field's type; what a config holds is a
    plain str, float, int or path, as it always was, which every encoder
    (msgspec, orjson, YAML) writes as it is wherever the value travels (journal entries,
    JSON bodies, manifests).
    """

    __slots__ = ()

    def __new__(cls, value: Any) -> Self:
        base = next(b for b in cls.__mro__ if b in _BUILTINS)
        return cast(Self, base(value))


class Matching(Plain, str):
    """A string ``pattern`` matches whole (a trailing newline included), else ``expected
    <what>, got '...'``: the types that are one regular expression and an example."""

    __slots__ = ()
    pattern: ClassVar[re.Pattern[str]]
    what: ClassVar[str]
    """What was expected, with an example (``a host name``)."""

    @classmethod
    def parse(cls, value: object) -> Self:
        text = expect_str(value)
        if not cls.pattern.fullmatch(text):
            raise ValueError(f"expected {cls.what}, got {text!r}")
        return cls(text)


def _duration(value: object) -> float:
    # A YAML number is refused: 5 could mean seconds or milliseconds.
    try:
        if isinstance(value, str):
            return parse_duration(value)
    except ValueError as exc:
        if str(exc) == "duration out of range":
            raise ValueError(f"expected a duration up to 292y, got {value!r}") from None
    raise ValueError(f"expected a duration such as 15s, 10m or 1h30m, got {clip(repr(value), 80)}")


class Duration(Plain, float):
    """Seconds, written in Prometheus's duration syntax (``15s``, ``1h30m``, ``0``)."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Self:
        return cls(_duration(value))


class PositiveDuration(Duration):
    """For intervals, timeouts and backoffs: zero would spin a loop or time out at once."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Self:
        seconds = _duration(value)
        if seconds <= 0:
            raise ValueError(f"expected a duration > 0, got {value!r}")
        return cls(seconds)


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {value!r}")
    return value.rstrip("/")


class Url(Plain, str):
    """An http(s) URL with a host; a trailing slash is dropped so that paths join cleanly."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Self:
        return cls(_url(expect_str(value)))


class BaseUrl(Url):
    """A ``Url`` that paths are appended to: no userinfo (credentials go in ``http_config``),
    no query string or fragment."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Self:
        # Userinfo is refused first: the generic URL message would echo the password.
        text = expect_str(value)
        parts = urlsplit(text)
        if parts.username is not None or parts.password is not None:
            # Not echoed: the point is to keep the password out of every output.
            shown = f"{parts.scheme}://***@{parts.netloc.rpartition('@')[2]}{parts.path}"
            raise ValueError(
                f"expected no user or password in the URL (it would show on the status page "
                f"and in logs), got {shown!r}; use app.http_config.basic_auth or authorization"
            )
        if parts.query or parts.fragment or text.endswith(("?", "#")):
            shown = f"{parts.scheme}://{parts.netloc}{parts.path}"
            raise ValueError(
                f"expected no query string or fragment (paths are appended to the URL), "
                f"got {shown!r} followed by one"
            )
        return cls(_url(text))


class UrlPath(Plain, str):
    """A path on a server, starting with ``/``."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Self:
        text = expect_str(value)
        if not text.startswith("/"):
            raise ValueError(f"expected a path starting with '/', got {text!r}")
        return cls(text)


class Listen(Plain, str):
    """``host:port`` to listen on."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Self:
        text = expect_str(value)
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
            raise ValueError(f"expected host:port such as 0.0.0.0:9120, got {text!r}")
        return cls(text)


class StateDir(Plain, PosixPath):
    """A directory the sidecar owns; an empty string is refused."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Self:
        # Path("") is the working directory: an empty value is a mistake, not a choice.
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"expected a directory path, got {clip(repr(value), 80)}")
        return cls(value)


# The units the config has always accepted: SI and IEC, in bytes or bits,
# case-insensitive, and a bare SI letter (k, M, G...); a number, then the unit, and
# whatever follows the unit is not read.
_BYTE_UNITS: dict[str, float] = {
    "b": 1,
    **{f"{p}b": 10 ** (3 * i) for i, p in enumerate("kmgtpe", 1)},
    **{f"{p}ib": 2 ** (10 * i) for i, p in enumerate("kmgtpe", 1)},
    "bit": 1 / 8,
    **{f"{p}bit": 10 ** (3 * i) / 8 for i, p in enumerate("kmgtpe", 1)},
    **{f"{p}ibit": 2 ** (10 * i) / 8 for i, p in enumerate("kmgtpe", 1)},
    **{p: 10 ** (3 * i) for i, p in enumerate("kmgtpe", 1)},
}
_BYTE_STRING = re.compile(r"^\s*(\d*\.?\d+)\s*(\w+)?", re.IGNORECASE)


class ByteSize(Plain, int):
    """A positive number of bytes: an int, or a size with its unit (``16MiB``, ``512KB``)."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Self:
        size = cls._bytes(value)
        if size <= 0:
            raise ValueError(f"expected a byte size > 0, got {clip(repr(value), 80)}")
        return cls(size)

    @staticmethod
    def _bytes(value: object) -> int:
        expected = f"expected a byte size such as 16MiB or 512KB, got {clip(repr(value), 80)}"
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        text = value if isinstance(value, str) else None
        if text is None:
            raise ValueError(expected)
        m = _BYTE_STRING.match(text)
        if m is None:
            raise ValueError(expected)
        try:
            return int(text)  # a string that looks like a size and is an int: "10", " 10 "
        except ValueError:
            pass
        scalar, unit = m.groups()
        mult = _BYTE_UNITS.get((unit or "b").lower())
        if mult is None:
            raise ValueError(f"expected a byte unit such as KB, MiB or GB, got {unit!r}")
        try:
            return int(float(scalar) * mult)
        except OverflowError:
            raise ValueError(expected) from None


class Secret(Checked):
    """A secret string: its repr and str never show it; ``get_secret_value`` does."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    @classmethod
    def parse(cls, value: object) -> Self:
        if isinstance(value, str):
            return cls(value)
        # Not echoed: even a mistyped secret is a secret.
        raise ValueError(f"expected str, got {type(value).__name__}")

    def get_secret_value(self) -> str:
        """The secret itself: for the one place that sends or compares it."""
        return self._value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self}')"


Positive = Annotated[int, msgspec.Meta(gt=0)]
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


class ConfigModel(Model, frozen=True):
    """The base of every config section: frozen, no unknown keys, strict types.

    Strict: "yes", 1 or "1" is not a boolean, "5" not a number; a config that decides
    outages says what it means. Paths are the one lax type (written as strings).
    """


class RetryConfig(ConfigModel, frozen=True):
    """A bounded retry policy: exponential backoff with jitter, capped in attempts and time."""

    attempts: Positive = 3
    """Total tries, the first included."""
    initial_backoff: PositiveDuration = PositiveDuration(0.1)
    """Wait before the first retry."""
    max_backoff: PositiveDuration = PositiveDuration(2.0)
    """Cap on one wait, jitter included."""
    max_elapsed: PositiveDuration = PositiveDuration(10.0)
    """Give up once this much time has passed."""
