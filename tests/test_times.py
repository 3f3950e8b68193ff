"""Times: integer milliseconds inside, one exact text form per reader outside."""

from __future__ import annotations

import datetime as dt

import pytest

from sidecar.core.times import (
    GO_ZERO_TIME,
    go_rfc3339,
    go_time,
    iso,
    iso_seconds,
    ms_to_datetime,
    now_ms,
    parse_iso,
    rfc3339,
    time_of_day,
    to_ms,
)

T = 1_700_000_040_120  # 2023-11-14T22:14:00.120Z


def test_milliseconds_and_datetimes_convert_both_ways() -> None:
    """A clock reading rounds to the millisecond; datetimes convert exactly."""
    assert now_ms(1_700_000_040.1204) == T
    assert ms_to_datetime(T) == dt.datetime(2023, 11, 14, 22, 14, 0, 120_000, tzinfo=dt.UTC)
    assert to_ms(ms_to_datetime(T)) == T


def test_the_sidecars_own_forms() -> None:
    """API and journal times carry milliseconds, the status page whole seconds, charts a clock."""
    assert (iso(T), iso(0)) == ("2023-11-14T22:14:00.120Z", "1970-01-01T00:00:00.000Z")
    assert (iso_seconds(T), iso_seconds(T + 999)) == (
        "2023-11-14T22:14:00Z",
        "2023-11-14T22:14:01Z",
    )
    assert time_of_day(T) == "22:14:00Z"


def test_rfc3339_prints_an_alert_time_in_utc() -> None:
    """An aware datetime in any zone prints in UTC with a Z, microseconds only when present."""
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert rfc3339(dt.datetime(2024, 1, 1, 2, 0, tzinfo=plus2)) == "2024-01-01T00:00:00Z"
    assert rfc3339(ms_to_datetime(T)) == "2023-11-14T22:14:00.120000Z"


def test_parse_iso_reads_back_what_the_sidecar_wrote() -> None:
    """``iso`` and ``rfc3339`` texts parse back to the same instant."""
    assert to_ms(parse_iso(iso(T))) == T
    assert to_ms(parse_iso(rfc3339(ms_to_datetime(T)))) == T


@pytest.mark.parametrize(
    ("ms", "string", "json"),
    [
        (0, "1970-01-01 00:00:00 +0000 UTC", "1970-01-01T00:00:00Z"),
        (T, "2023-11-14 22:14:00.12 +0000 UTC", "2023-11-14T22:14:00.12Z"),
        (-1, "1969-12-31 23:59:59.999 +0000 UTC", "1969-12-31T23:59:59.999Z"),
    ],
)
def test_go_times(ms: int, string: str, json: str) -> None:
    """Times print as Go's Time.String and its JSON form: fraction without trailing zeros."""
    assert (go_time(ms), go_rfc3339(ms)) == (string, json)


def test_never_is_gos_zero_time() -> None:
    """No time prints as Go's zero time, year padded to four digits, as Prometheus's API does."""
    assert go_rfc3339(None) == "0001-01-01T00:00:00Z"
    assert dt.datetime(1, 1, 1, tzinfo=dt.UTC) == GO_ZERO_TIME
    assert go_rfc3339(to_ms(GO_ZERO_TIME)) == "0001-01-01T00:00:00Z"
