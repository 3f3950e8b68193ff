"""The demo's narration: human units from the status page's formatters, every story ended."""

from __future__ import annotations

import shlex

from sidecar.demo.narrator import NEXT_STEPS, DemoResult, kept_lines, leak_line, summary_lines
from sidecar.demo.watch import AlertStory, alert_line, app_line, resolved_line, unfinished_line

GIB = 1024**3


def test_app_line_prints_keys_with_si_and_bytes_in_binary_units() -> None:
    """Keys read 247k, the heap and the limit in GiB/MiB, the share of the limit in percent."""
    doc = {
        "cache_keys_total": 247_133,
        "conn_pool_active": 14,
        "conn_pool_max": 100,
        "memstats": {"HeapInuse": 442_187_776},
    }
    assert app_line(doc, 3 * GIB) == (
        "app: 247k cache keys, heap in use 421.7 MiB (14% of its 3.0 GiB limit), "
        "pool 14/100 connections"
    )


def test_leak_line_gives_rates_in_units_per_second() -> None:
    """The leak's rates: keys with an SI suffix, heap in MiB per second."""
    leak = {"on": True, "keys_per_second": 2000, "heap_bytes_per_second": 2 * 1024**2,
            "pool_per_second": 0.02}  # fmt: skip
    assert leak_line(leak) == (
        "leak switched on: +2k cache keys/s, +2.0 MiB/s of heap, +0.02 pool connections/s"
    )


def test_an_alert_speaks_in_its_rules_summary() -> None:
    """An alert is told in its rule's own summary, not as a raw float."""
    alert = {
        "labels": {"alertname": "OOMImminent"},
        "annotations": {"summary": "Heap in use at 81.59% of the memory limit"},
        "state": "pending",
        "value": "8.159e-01",
    }
    assert alert_line(alert) == (
        "sidecar: alert OOMImminent is pending: Heap in use at 81.59% of the memory limit"
    )


def test_an_alert_without_a_summary_gets_its_value_with_an_si_suffix() -> None:
    """No summary: the value prints as the chart axes print it (342M, not 3.42e+08)."""
    alert = {"labels": {"alertname": "X"}, "annotations": {}, "state": "firing",
             "value": "3.42e+08"}  # fmt: skip
    assert alert_line(alert) == "sidecar: alert X is firing: value 342M"


def test_a_resolved_alert_says_whether_it_fired_and_for_how_long() -> None:
    """Resolved after firing gives the firing time; before firing, how far its for: got."""
    fired = AlertStory("OOMImminent", "firing", pending_at=886.0, firing_at=947.0)
    assert resolved_line(fired, 1365.0, 60.0) == (
        "sidecar: alert OOMImminent resolved after firing for 6m58s"
    )
    pending = AlertStory("HeapFloorRising", "pending", pending_at=63.0)
    assert resolved_line(pending, 75.0, 1200.0) == (
        "sidecar: alert HeapFloorRising resolved without firing: its condition held 12s of "
        "the 20m its for: asks"
    )


def test_an_alert_still_active_at_the_end_says_where_it_stands() -> None:
    """No dangling alert: one still pending or firing at the end is named with its progress."""
    pending = AlertStory("CacheKeysGrowing", "pending", pending_at=1000.0)
    assert unfinished_line(pending, 1150.0, 300.0) == (
        "sidecar: alert CacheKeysGrowing is still pending as the demo ends: its condition has "
        "held 2m30s of the 5m its for: asks; it fires only if it holds that long"
    )
    firing = AlertStory("HeapFloorRising", "firing", pending_at=0.0, firing_at=1200.0)
    assert unfinished_line(firing, 1290.0, 1200.0) == (
        "sidecar: alert HeapFloorRising is still firing as the demo ends (for 1m30s); it "
        "resolves once its condition clears"
    )


def test_summary_gives_bytes_percentages_and_app_time() -> None:
    """The outcome in GiB and percent of the limit, the app time as a duration."""
    result = DemoResult(
        calls={"/v1/cache/flush": 2, "/v1/circuit/break": 1, "/v1/circuit/reset": 1},
        app_s=1525.4,
        complete=True,
        heap_peak=0.9,
        heap_at_break=0.85,
        wall_s=25.42,
    )
    assert summary_lines(result) == [
        "memory: the heap in use peaked at 2.7 GiB (90% of the 3.0 GiB limit) and the circuit "
        "broke at 2.5 GiB (85%); the kernel never had to kill the app",
        "summary: the app received 2 flushes, 1 break and 1 reset in 25m25s of app time "
        "(25.4s of yours); every line above was observed over HTTP",
    ]


def test_the_demo_ends_with_where_to_look_next() -> None:
    """Without --keep the last lines point at --keep and at running next to a real service."""
    assert [line.split(":")[0] for line in NEXT_STEPS] == ["next", "next"]
    assert "`leak-sidecar demo --keep`" in NEXT_STEPS[0]
    assert "`leak-sidecar check-target http://127.0.0.1:8080/debug/vars`" in NEXT_STEPS[1]


def test_kept_lines_are_the_status_page_and_curl_commands_that_parse() -> None:
    """--keep prints the status page and curl commands with the token and Content-Type."""
    lines = kept_lines("http://127.0.0.1:1", "http://127.0.0.1:2", "tok", 60.0)
    assert lines[:3] == [
        "kept running (time still runs 60x faster); Ctrl-C or SIGTERM stops both",
        "  status page: http://127.0.0.1:2/",
        "  curl -fsS http://127.0.0.1:2/v1/circuit",
    ]
    post = shlex.split(lines[5])
    assert post == [
        "curl", "-fsS", "-X", "POST", "-H", "Authorization: Bearer tok",
        "-H", "Content-Type: application/json",
        "-d", '{"reason": "trying the breaker by hand", "hold": true}',
        "http://127.0.0.1:2/v1/circuit/break",
    ]  # fmt: skip
