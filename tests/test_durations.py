"""Durations: Prometheus's syntax, read and printed one way everywhere; Go's only for promtool."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
from status_support import NOW, parse_html, rich_view

from sidecar.core.config_load import load
from sidecar.core.durations import (
    MAX_DURATION_MS,
    format_duration,
    format_duration_ms,
    go_duration,
    parse_duration,
    parse_duration_ms,
)
from sidecar.core.errors import ConfigError
from sidecar.rules.unittest.runner import test_rules as run_rule_tests
from sidecar.web.status_render import render_page

DAY_MS = 86_400_000


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0", 0),
        ("0s", 0),
        ("500ms", 500),
        ("5s", 5000),
        ("10m", 600_000),
        ("1h30m", 5_400_000),
        ("1d", DAY_MS),
        ("2w", 14 * DAY_MS),
        ("1y", 365 * DAY_MS),
        ("1y2w3d4h5m6s7ms", 365 * DAY_MS + 17 * DAY_MS + 14_706_007),
        ("90s", 90_000),
        ("007s", 7000),
    ],
)
def test_parse_duration_ms_reads_prometheus_syntax(text: str, ms: int) -> None:
    """Units y w d h m s ms, largest first, combine; a bare 0 is allowed."""
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration string"),
        ("5", 'not a valid duration string: "5"'),
        ("00", 'not a valid duration string: "00"'),
        ("5 s", 'not a valid duration string: "5 s"'),
        ("1m1h", 'not a valid duration string: "1m1h"'),
        ("1s1s", 'not a valid duration string: "1s1s"'),
        ("-5s", 'not a valid duration string: "-5s"'),
        ("1.5s", 'not a valid duration string: "1.5s"'),
        ("5S", 'not a valid duration string: "5S"'),
        ("5s\n", 'not a valid duration string: "5s\n"'),
        ("\u0665s", 'not a valid duration string: "\u0665s"'),
    ],
)
def test_parse_duration_ms_refuses_the_rest_with_prometheus_text(text: str, message: str) -> None:
    """Signs, fractions, spaces, wrong order, repeats, non-ASCII digits and newlines fail."""
    with pytest.raises(ValueError) as info:
        parse_duration_ms(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "text", ["293y", "106752d", f"{MAX_DURATION_MS + 1}ms", "292y1000w", "9" * 5000 + "s"]
)
def test_durations_past_go_time_duration_are_out_of_range(text: str) -> None:
    """Past about 292 years (an int64 of nanoseconds) Prometheus says out of range."""
    with pytest.raises(ValueError) as info:
        parse_duration_ms(text)
    assert str(info.value) == "duration out of range"


def test_the_longest_duration_is_accepted() -> None:
    """The last millisecond an int64 of nanoseconds holds, and 292y, are durations."""
    assert parse_duration_ms(f"{MAX_DURATION_MS}ms") == 9_223_372_036_854
    assert parse_duration_ms("00000000000000000000000292y") == 292 * 365 * DAY_MS


def test_parse_duration_gives_seconds_as_template_parse_duration_does() -> None:
    """Seconds are float64(nanoseconds) / 1e9, as Prometheus's parseDuration computes them."""
    assert [parse_duration(t) for t in ("0", "500ms", "1h30m", "1d")] == [0.0, 0.5, 5400.0, 86400.0]
    assert parse_duration("1y1ms") == float(31_536_000_001 * 1_000_000) / 1e9
    with pytest.raises(ValueError) as info:
        parse_duration("")
    assert str(info.value) == "empty duration string"


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0s"),
        (1, "1ms"),
        (500, "500ms"),
        (90_000, "1m30s"),
        (3_600_000, "1h"),
        (DAY_MS, "1d"),
        (DAY_MS + 3_600_000, "1d1h"),
        (7 * DAY_MS, "1w"),
        (90 * DAY_MS, "90d"),
        (365 * DAY_MS, "1y"),
        (366 * DAY_MS, "366d"),
        (14 * DAY_MS + 1, "14d1ms"),
        (-90_000, "-1m30s"),
    ],
)
def test_format_duration_ms_prints_as_model_duration(ms: int, text: str) -> None:
    """Prometheus's model.Duration.String: years and weeks only when they divide exactly."""
    assert format_duration_ms(ms) == text


@pytest.mark.parametrize("text", ["1h30m", "5s", "250ms", "2m3s", "1d", "1w", "1y", "3d4h5m6s7ms"])
def test_format_duration_prints_what_parse_duration_reads(text: str) -> None:
    """Seconds round-trip through the text exactly, in either unit."""
    assert format_duration(parse_duration(text)) == text
    assert format_duration_ms(parse_duration_ms(text)) == text


def test_format_duration_rounds_seconds_to_the_millisecond() -> None:
    """A float a hair off a whole millisecond prints as that millisecond."""
    assert [format_duration(s) for s in (1.001, 0.1 + 0.2, 86400.0, 0.0004)] == [
        "1s1ms",
        "300ms",
        "1d",
        "0s",
    ]


def test_go_duration_prints_as_time_duration() -> None:
    """Go's time.Duration.String: hours, minutes and seconds always, no days, ms below 1s."""
    assert [go_duration(ms) for ms in (0, 500, 1500, 60_000, 90_500, 3_600_000, DAY_MS, -1500)] == [
        "0s",
        "500ms",
        "1.5s",
        "1m0s",
        "1m30.5s",
        "1h0m0s",
        "24h0m0s",
        "-1.5s",
    ]


def test_a_day_prints_as_1d_wherever_a_person_reads_a_duration(tmp_path: Path) -> None:
    """86400 s is 1d in config errors, on the status page and in the rule-test report."""
    assert format_duration(86400) == "1d"

    cfg = tmp_path / "c.yaml"
    cfg.write_text("breaker:\n  min_open: 25h\n  max_open: 86400s\n")
    with pytest.raises(ConfigError) as info:
        load(cfg, {"LEAK_SIDECAR_TOKEN": "t"})
    assert info.value.problems == [
        "breaker.max_open: must not be below breaker.min_open (1d1h), got 1d"
    ]

    view = rich_view()
    target = replace(view.target, last_scrape_ms=NOW - DAY_MS, interval_s=86400.0)
    doc = parse_html(render_page(replace(view, target=target)))
    assert doc.by_id("target-last-scrape").text() == "1d ago"
    assert doc.by_id("target-interval").text() == "1d"

    test_file = tmp_path / "t.yml"
    test_file.write_text(
        "evaluation_interval: 1d\n"
        "tests:\n"
        "  - interval: 1d\n"
        "    promql_expr_test:\n"
        "      - expr: vector(1)\n"
        "        eval_time: 24h\n"
        "        exp_samples: []\n"
    )
    out, err = io.StringIO(), io.StringIO()
    assert run_rule_tests([str(test_file)], out, err) == 1
    assert err.getvalue() == (
        '  FAILED:\n    expr: "vector(1)", time: 1d,\n        exp: nil\n        got: {} 1E+00\n'
    )
    # The one exception, as in promtool: the time of a rule evaluation error is a Go duration.
    assert go_duration(DAY_MS) == "24h0m0s"
