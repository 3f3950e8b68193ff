"""Times: integer milliseconds inside, RFC 3339 in UTC outside; one function per format.

Inside the sidecar a time is integer milliseconds since the Unix epoch, as in
Prometheus, so that window arithmetic matches Prometheus to the last bit. What goes out
is RFC 3339 in UTC with a ``Z``, in the form its reader expects:

- ``iso``: millisecond precision, always three digits: the sidecar's own API, journal
  and breaker state;
- ``iso_seconds``: whole seconds: the status page, where a person reads it;
- ``time_of_day``: ``HH:MM:SSZ``: a chart's axis label;
- ``rfc3339``: an aware datetime (an alert's ``startsAt``/``endsAt``) to Alertmanager and
  the app, microseconds when it has any;
- ``go_rfc3339``: Go's ``time.Time`` in JSON (RFC 3339 with the fraction's trailing zeros
  dropped), as Prometheus's HTTP API prints it; Go's zero time for "never";
- ``go_time``: Go's ``time.Time.String``, as alert templates print a time.

What comes in is parsed by ``parse_iso`` (the journal reading back ``iso``/``rfc3339``);
Alertmanager's webhook times are checked by the receiver as they are decoded.
"""

from __future__ import annotations

import datetime as dt

__all__ = [
    "GO_ZERO_TIME",
    "go_rfc3339",
    "go_time",
    "iso",
    "iso_seconds",
    "ms_to_datetime",
    "now_ms",
    "parse_iso",
    "rfc3339",
    "time_of_day",
    "to_ms",
]

GO_ZERO_TIME = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
"""Go's zero ``time.Time``: Alertmanager's ``endsAt`` when unset, Prometheus's
``lastEvaluation`` of a rule never evaluated."""

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_GO_ZERO_MS = (GO_ZERO_TIME - _EPOCH) // dt.timedelta(milliseconds=1)


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


def iso_seconds(ms: int) -> str:
    """Integer milliseconds as RFC 3339 in UTC, the fraction of a second cut off."""
    return ms_to_datetime(ms).isoformat(timespec="seconds").replace("+00:00", "Z")


def time_of_day(ms: int) -> str:
    """Integer milliseconds as the UTC time of day, ``HH:MM:SSZ``."""
    return ms_to_datetime(ms).strftime("%H:%M:%SZ")


def parse_iso(text: str) -> dt.datetime:
    """The inverse of ``iso`` and ``rfc3339`` (and of ``datetime.isoformat``)."""
    return dt.datetime.fromisoformat(text)


def rfc3339(t: dt.datetime) -> str:
    """An aware datetime in UTC, ``Z``-suffixed, with microseconds when it has any
    (``datetime.isoformat``); Alertmanager and the app accept any RFC 3339 form."""
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _go_stamp(ms: int, sep: str) -> str:
    # Go prints the fraction of a second without trailing zeros (and without the dot
    # when it is zero). Epoch plus timedelta is exact, before 1970 too; the fields are
    # padded by hand because strftime does not pad years before 1000.
    t = _EPOCH + dt.timedelta(milliseconds=ms)
    frac = f"{ms % 1000:03d}".rstrip("0")
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}{sep}{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        + (f".{frac}" if frac else "")
    )


def go_time(ms: int) -> str:
    """Go's ``time.Time.String()`` of a UTC time in milliseconds: ``2023-11-14 22:14:00.12
    +0000 UTC``."""
    return _go_stamp(ms, " ") + " +0000 UTC"


def go_rfc3339(ms: int | None) -> str:
    """A UTC time in milliseconds as Go's JSON encoding prints it (RFC 3339, nanosecond
    form: ``2023-11-14T22:14:00.12Z``); None is Go's zero time, ``0001-01-01T00:00:00Z``."""
    return _go_stamp(_GO_ZERO_MS if ms is None else ms, "T") + "Z"
