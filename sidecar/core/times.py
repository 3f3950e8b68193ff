"""Times: integer milliseconds inside, RFC 3339 in UTC outside.

Inside the sidecar a time is integer milliseconds since the Unix epoch, as in
Prometheus, so that window arithmetic matches Prometheus to the last bit. What goes out
(the journal, the app, the API, logs) is RFC 3339 in UTC with a ``Z``; what comes in
(Alertmanager's and Prometheus's times) is parsed here too.
"""

from __future__ import annotations

import datetime as dt

__all__ = ["iso", "ms_to_datetime", "now_ms", "parse_iso", "rfc3339", "to_ms"]


def now_ms(clock: float) -> int:
    """Convert a ``time.time()``-style clock reading to integer milliseconds."""
    return round(clock * 1000)


def ms_to_datetime(ms: int) -> dt.datetime:
    """Integer milliseconds to an aware UTC datetime."""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def to_ms(t: dt.datetime) -> int:
    """An aware datetime as integer milliseconds since the epoch."""
    return now_ms(t.timestamp())


def iso(ms: int) -> str:
    """Integer milliseconds as RFC 3339 in UTC with millisecond precision."""
    return ms_to_datetime(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> dt.datetime:
    """The inverse of ``iso`` (and of ``datetime.isoformat``)."""
    return dt.datetime.fromisoformat(text)


def rfc3339(t: dt.datetime) -> str:
    """An aware datetime in UTC, ``Z``-suffixed, as Alertmanager prints times."""
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
