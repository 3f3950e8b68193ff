"""The status page: GET / served by the real app shows each stage's facts, escaped."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from status_support import (
    ALERT_LABELS,
    HEAP,
    HOSTILE,
    NOW,
    WINDOW_MS,
    ChartSource,
    FixedSource,
    Node,
    parse_html,
    rich_view,
    status_app,
    young_pod_store,
)

from sidecar.core.model import labelset
from sidecar.store import Store
from sidecar.web.status import routes
from sidecar.web.status_render import format_labels, format_value, render_page
from sidecar.web.status_view import (
    ActionRecord,
    ActiveAlert,
    BreakerEvent,
    BreakerStatus,
    ReconcileStatus,
    RuleStatus,
    StatusView,
    TargetStatus,
)
from sidecar.web.svgchart import chart_series

Client = TestClient[web.Request, web.Application]
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


@pytest.fixture
async def serve(
    registry: CollectorRegistry,
) -> AsyncIterator[Callable[[StatusView], TestClient[web.Request, web.Application]]]:
    """Start the real app on 127.0.0.1 with the status routes for a given view."""
    clients: list[Client] = []

    def make(view: StatusView) -> Client:
        client = TestClient(TestServer(status_app(registry, view), host="127.0.0.1"))
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.close()


async def _page(client: Client) -> tuple[str, Node]:
    await client.start_server()
    resp = await client.get("/")
    assert resp.status == 200
    body = await resp.text()
    return body, parse_html(body)


async def test_page_is_utf8_html_with_a_strict_security_policy(
    serve: Callable[[StatusView], Client],
) -> None:
    """GET / answers text/html in UTF-8, uncached, under a policy that forbids scripts."""
    client = serve(rich_view())
    await client.start_server()
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert resp.headers["Content-Security-Policy"] == CSP
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_head_answers_without_a_body(serve: Callable[[StatusView], Client]) -> None:
    """HEAD / gives the same status and type as GET and no body."""
    client = serve(rich_view())
    await client.start_server()
    resp = await client.head("/")
    assert (resp.status, resp.headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert await resp.read() == b""


async def test_target_section_shows_the_last_scrape(serve: Callable[[StatusView], Client]) -> None:
    """Health, when, how long, how big and how many series the last scrape was."""
    _, doc = await _page(serve(rich_view()))
    facts = {
        i: doc.by_id(f"target-{i}").text()
        for i in ("url", "health", "last-scrape", "duration", "body", "series", "interval", "error")
    }
    assert facts == {
        "url": "http://127.0.0.1:8080/debug/vars",
        "health": "up",
        "last-scrape": "3s ago",
        "duration": "42 ms",
        "body": "12.3 KiB (12601 B)",
        "series": "312",
        "interval": "15s",
        "error": "\u2014",
    }
    (stamp,) = doc.by_id("target-last-scrape").iter("time")
    assert stamp.attrs["datetime"] == "2023-11-14T22:13:17Z"


async def test_breaker_section_shows_state_holders_reset_and_history(
    serve: Callable[[StatusView], Client],
) -> None:
    """The circuit's state, why, who holds it open, the earliest reset and its changes."""
    _, doc = await _page(serve(rich_view()))
    facts = {
        i: doc.by_id(f"breaker-{i}").text()
        for i in ("state", "mode", "since", "reason", "source", "holders", "reset")
    }
    assert facts == {
        "state": "open",
        "mode": "live",
        "since": "2m ago",
        "reason": "alert CacheKeysGrowing firing",
        "source": "alert",
        "holders": 'action="circuit_break" alertname="CacheKeysGrowing" severity="page"',
        "reset": "in 3m",
    }
    assert doc.by_id("breaker-history").grid() == [
        ["When", "State", "Source", "Reason"],
        ["2m ago", "open", "alert", "alert CacheKeysGrowing firing"],
        ["30m ago", "closed", "operator", "manual reset"],
    ]


async def test_alerts_rules_and_actions_tables(serve: Callable[[StatusView], Client]) -> None:
    """Each active alert, rule and action is one row with its state, value and times."""
    _, doc = await _page(serve(rich_view()))
    assert doc.by_id("alerts-table").grid() == [
        ["Alert", "State", "Since", "Value", "Labels", "Summary"],
        ["CacheKeysGrowing", "firing", "2m5s ago", "812.5",
         'action="circuit_break" severity="page"', "cache keys grow 812/s"],
    ]  # fmt: skip
    assert doc.by_id("rules-table").grid() == [
        ["Group", "Rule", "State", "Health", "Last value", "Evaluated", "Last error"],
        ["leaks", "CacheKeysGrowing rate(cache_keys_total[10m]) > 500", "firing", "ok", "812.5",
         "4s ago", ""],
        ["leaks", "PoolSaturated avg_over_time(conn_pool_active[5m]) > 95", "inactive", "err",
         "\u2014", "4s ago", 'unknown function "foo"'],
        ["records", "job:heap:avg avg_over_time(go_memstats_heap_inuse_bytes[5m])", "recording",
         "ok", "1500000000", "1m1s ago", ""],
    ]  # fmt: skip
    assert doc.by_id("actions-table").grid() == [
        ["When", "Action", "Source", "Reason", "Outcome", "Attempts", "Error"],
        ["1m59s ago", "circuit_break", "rules", "alert CacheKeysGrowing firing", "success", "2",
         ""],
        ["30m ago", "circuit_reset", "operator", "manual reset", "gave_up", "5",
         "503 Service Unavailable"],
    ]  # fmt: skip


async def test_states_are_words_with_a_colour_class(serve: Callable[[StatusView], Client]) -> None:
    """Every state badge prints its word; the colour class only repeats it."""
    _, doc = await _page(serve(rich_view()))
    badges = {
        (n.text(), n.attrs["class"])
        for n in doc.iter("span")
        if (n.attrs.get("class") or "").startswith("badge")
    }
    assert badges == {
        ("up", "badge good"),
        ("open", "badge bad"),
        ("closed", "badge good"),
        ("firing", "badge bad"),
        ("inactive", "badge"),
        ("ok", "badge good"),
        ("err", "badge bad"),
        ("success", "badge good"),
        ("gave_up", "badge bad"),
        ("in sync", "badge good"),
        ("confirmed", "badge good"),
    }


async def test_circuit_shows_desired_observed_and_the_last_reconcile(
    serve: Callable[[StatusView], Client],
) -> None:
    """Desired and observed state with their generations, sync, and the last reconcile."""
    _, doc = await _page(serve(rich_view()))
    assert doc.by_id("circuit-desired").text() == "open (generation 7)"
    assert doc.by_id("circuit-observed").text().startswith("open (generation 7) ")
    assert doc.by_id("circuit-sync").text() == "in sync"
    assert doc.by_id("circuit-reconcile").text().endswith("decision, 2 call(s)")
    behind = replace(
        rich_view(),
        breaker=replace(
            rich_view().breaker,
            observed=None,
            in_sync=False,
            reconcile=ReconcileStatus(NOW, "unavailable", "app_restart", 3, "refused <b>"),
        ),
    )
    _, doc = await _page(serve(behind))
    assert doc.by_id("circuit-sync").text() == "converging"
    assert doc.by_id("circuit-observed").text() == "\u2014"
    assert doc.by_id("circuit-reconcile").text().endswith("app_restart, 3 call(s): refused <b>")


async def test_header_sections_and_refresh(serve: Callable[[StatusView], Client]) -> None:
    """The header sums up target, circuit and firing alerts; the page reloads every 10s."""
    _, doc = await _page(serve(rich_view()))
    summary = [doc.by_id(i).text() for i in ("summary-target", "summary-circuit", "summary-firing")]
    assert summary == ["up", "open", "1 firing"]
    assert [h.text() for h in doc.iter("h2")] == [
        "Target",
        "Circuit breaker",
        "Active alerts (1)",
        "Rules (3)",
        "Recent actions",
        "Series the rules read",
    ]
    refresh = [m.attrs for m in doc.iter("meta") if m.attrs.get("http-equiv") == "refresh"]
    assert refresh == [{"http-equiv": "refresh", "content": "10"}]
    assert next(doc.iter("html")).attrs["lang"] == "en"


async def test_charts_show_each_series_with_gaps(serve: Callable[[StatusView], Client]) -> None:
    """One figure per series, its lines broken at staleness, each within the point budget."""
    _, doc = await _page(serve(rich_view()))
    figures = [doc.by_id(f"chart-{i}") for i in range(3)]
    assert [next(f.iter("figcaption")).text() for f in figures] == [
        f'cache_keys_total{{cache="{HOSTILE}"}} last 42, 20 samples',
        'cache_keys_total{cache="orders"} last 6033, 711 samples',
        'conn_pool_active{pool="db"} last 5.1224, 720 samples',
    ]
    lines = [[len(str(p.attrs["points"]).split()) for p in f.iter("polyline")] for f in figures]
    # 20 samples drawn as they are; 711 and 720 cut to at most 300 points each.
    assert lines == [[20], [116, 158], [278]]
    assert not any(n.attrs.get("id") == "charts-omitted" for n in doc.iter())


async def test_hostile_strings_are_text_never_markup(
    serve: Callable[[StatusView], Client],
) -> None:
    """Label names, label values and every other string are escaped, in text and attributes."""
    evil = labelset({"alertname": HOSTILE, HOSTILE: HOSTILE})
    view = StatusView(
        now_ms=NOW,
        target=TargetStatus(url=HOSTILE, health="down", last_scrape_ms=NOW, error=HOSTILE),
        rules=(
            RuleStatus(HOSTILE, HOSTILE, "alerting", HOSTILE, "pending", "err", None, NOW, HOSTILE),
        ),
        alerts=(ActiveAlert(evil, "pending", NOW, 1.0, HOSTILE),),
        breaker=BreakerStatus(
            "held",
            NOW,
            HOSTILE,
            HOSTILE,
            (evil,),
            None,
            True,
            (BreakerEvent(NOW, "held", HOSTILE, HOSTILE),),
        ),
        actions=(ActionRecord(NOW, HOSTILE, HOSTILE, HOSTILE, HOSTILE, 1, HOSTILE),),
        charts=rich_view().charts,
    )
    body, doc = await _page(serve(view))
    assert "<script" not in body.lower()
    assert list(doc.iter("script")) == []
    assert [a for n in doc.iter() for a in n.attrs if a.startswith("on")] == []
    for ident in ("target-url", "target-error", "breaker-reason", "breaker-source"):
        assert doc.by_id(ident).text() == HOSTILE
    chip = f'{HOSTILE}="{HOSTILE}"'
    assert doc.by_id("breaker-holders").text() == f'{chip} alertname="{HOSTILE}"'
    assert doc.by_id("alerts-table").rows() == [[HOSTILE, "pending", "0s ago", "1", chip, HOSTILE]]
    assert doc.by_id("rules-table").rows() == [
        [HOSTILE, f"{HOSTILE} {HOSTILE}", "pending", "err", "\u2014", "0s ago", HOSTILE]
    ]
    assert doc.by_id("actions-table").rows() == [
        ["0s ago", HOSTILE, HOSTILE, HOSTILE, HOSTILE, "1", HOSTILE]
    ]
    assert doc.by_id("breaker-mode").text() == "dry-run"
    (svg,) = doc.by_id("chart-0").iter("svg")
    assert (
        svg.attrs["aria-label"]
        == f'cache_keys_total{{cache="{HOSTILE}"}}: from 42 to 42, 20 points'
    )


async def test_empty_state_says_so(serve: Callable[[StatusView], Client]) -> None:
    """Before the first scrape, with no rules, alerts, actions or series, each section says so."""
    _, doc = await _page(serve(StatusView(NOW, TargetStatus("http://127.0.0.1:8080/debug/vars"))))
    dash = "\u2014"
    target = [
        doc.by_id(f"target-{i}").text() for i in ("health", "last-scrape", "duration", "body")
    ]
    assert target == ["unknown", dash, dash, dash]
    breaker = [doc.by_id(f"breaker-{i}").text() for i in ("state", "since", "holders", "reset")]
    assert breaker == ["closed", dash, dash, dash]
    empty = {
        i: doc.by_id(f"{i}-empty").text()
        for i in ("alerts", "rules", "actions", "charts", "breaker-history")
    }
    assert empty == {
        "alerts": "No pending or firing alerts.",
        "rules": "No rules loaded.",
        "actions": "No actions yet.",
        "charts": "No series to chart.",
        "breaker-history": "No state changes yet.",
    }
    assert [t.attrs for t in doc.iter("table")] == [{"class": "kv"}, {"class": "kv"}]
    assert doc.by_id("summary-firing").text() == "0 firing"


def test_fleet_budget_line_says_panic_loudly_and_is_absent_when_off() -> None:
    """The breaker section shows the fleet budget's line, with a panic badge in panic mode;
    without a budget there is no such row."""
    view = rich_view()
    line = "PANIC, automatic breaks suspended: panic: 6 of 10 sidecars look sick"
    panic = parse_html(render_page(replace(view, breaker=replace(view.breaker, fleet=line))))
    calm = parse_html(render_page(replace(view, breaker=replace(view.breaker, fleet="on"))))
    off = parse_html(render_page(view))
    cell = panic.by_id("breaker-fleet")
    assert cell.text() == f"panic {line}"
    assert [n.attrs.get("class") for n in cell.iter("span")] == ["badge bad", None]
    assert calm.by_id("breaker-fleet").text() == "on"
    assert [n for n in off.iter("td") if n.attrs.get("id") == "breaker-fleet"] == []


def test_omitted_charts_are_counted_and_refresh_can_be_off() -> None:
    """Series past the chart cap are counted on the page; refresh 0 leaves out the reload."""
    view = rich_view()
    store = Store(WINDOW_MS, 100)
    for k in range(3):
        store.ingest(NOW, {labelset({"__name__": "m", "k": str(k)}): 1.0})
    charts = chart_series(store, ["m"], now_ms=NOW, window_ms=WINDOW_MS, max_charts=1)
    doc = parse_html(render_page(replace(view, charts=charts), refresh_s=0))
    assert doc.by_id("charts-omitted").text() == "2 more series not shown."
    assert [m for m in doc.iter("meta") if m.attrs.get("http-equiv")] == []


def test_negative_refresh_is_refused() -> None:
    """A negative reload interval is a wiring bug, refused when the routes are built."""
    with pytest.raises(ValueError) as info:
        routes(FixedSource(rich_view()), refresh_s=-1)
    assert str(info.value) == "refresh_s must be 0 (off) or positive, got -1"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "\u2014"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (1.5e9, "1500000000"),
        (0.1 + 0.2, "0.3"),
        (1e20, "1e+20"),
    ],
)
def test_format_value(value: float | None, text: str) -> None:
    """Values print as Prometheus would show them: whole numbers whole, others to 6 digits."""
    assert format_value(value) == text


def test_format_labels() -> None:
    """Labels print in selector form, the metric name in front and outside the braces."""
    assert format_labels(ALERT_LABELS) == (
        '{action="circuit_break", alertname="CacheKeysGrowing", severity="page"}'
    )
    assert format_labels(labelset({"__name__": "m", "a": "1"})) == 'm{a="1"}'
    assert format_labels(labelset({"__name__": "up"})) == "up"
    assert format_labels(()) == "{}"


def test_realistic_page_renders_fast() -> None:
    """20 rules and 12 charts of 720 samples each select and render well within a frame budget."""
    store = Store(WINDOW_MS, 1000)
    names = [f"metric_{n}" for n in range(4)]
    for k in range(720):
        store.ingest(
            NOW - 3_595_000 + k * 5000,
            {
                labelset({"__name__": n, "shard": str(s)}): k * (s + 1) + math.sin(k)
                for n in names
                for s in range(3)
            },
        )
    rule = rich_view().rules[0]
    rules = tuple(replace(rule, name=f"Rule{i}") for i in range(20))
    start = time.perf_counter()
    charts = chart_series(store, names, now_ms=NOW, window_ms=WINDOW_MS)
    body = render_page(replace(rich_view(), rules=rules, charts=charts))
    elapsed = time.perf_counter() - start
    assert len(charts.series) == 12
    assert len(body.encode()) < 200_000
    # Measured at about 10 ms on a slow shared core; the bound only catches a blow-up.
    assert elapsed < 0.5


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (512, "512 B"),
        (5 * 1024 * 1024, "5.0 MiB (5242880 B)"),
        (3 * 1024**3, "3.0 GiB (3221225472 B)"),
        (5000 * 1024**3, "4.9 TiB (5368709120000 B)"),
    ],
)
def test_body_size_is_shown_in_binary_units_with_the_exact_bytes(size: int, text: str) -> None:
    """The scrape body size reads at a glance and still gives the exact byte count."""
    view = StatusView(NOW, TargetStatus("http://127.0.0.1:8080/debug/vars", body_bytes=size))
    assert parse_html(render_page(view)).by_id("target-body").text() == text


async def _young_pod_page(registry: CollectorRegistry, query: str) -> tuple[int, str]:
    source = ChartSource(rich_view(), young_pod_store(), [HEAP])
    client = TestClient(TestServer(status_app(registry, rich_view(), source=source)))
    await client.start_server()
    try:
        resp = await client.get(f"/{query}")
        return resp.status, await resp.text()
    finally:
        await client.close()


def _axis(doc: Node) -> tuple[str, str]:
    texts = {str(n.attrs.get("class")): n.text() for n in doc.by_id("chart-0").iter("text")}
    return texts["axis xmin"], texts["axis xmax"]


async def test_charts_span_the_data_or_the_window_asked_for(registry: CollectorRegistry) -> None:
    """Without ?window the heap of a ten-minute-old pod spans the chart from its first
    sample; ?window=15m spans the 15 minutes back from now; the chosen span is marked."""
    status, body = await _young_pod_page(registry, "")
    doc = parse_html(body)
    assert status == 200
    assert _axis(doc) == ("22:03:20Z", "22:13:20Z")
    assert doc.by_id("charts-window").text() == "Span: data there is 5m 15m 1h"
    assert [n.text() for n in doc.by_id("charts-window").iter("strong")] == ["data there is"]
    status, body = await _young_pod_page(registry, "?window=15m")
    doc = parse_html(body)
    assert status == 200
    assert _axis(doc) == ("21:58:20Z", "22:13:20Z")
    assert [n.text() for n in doc.by_id("charts-window").iter("strong")] == ["15m"]
    assert [n.attrs["href"] for n in doc.by_id("charts-window").iter("a")] == [
        "?", "?window=5m", "?window=1h"
    ]  # fmt: skip


async def test_the_heap_is_drawn_against_its_threshold_and_the_limit(
    registry: CollectorRegistry,
) -> None:
    """One chart: the heap, OOMImminent's 80% line and the memory limit, labelled."""
    _, body = await _young_pod_page(registry, "")
    chart = parse_html(body).by_id("chart-0")
    lines = [(n.attrs["class"], n.attrs["y1"]) for n in chart.iter("line")]
    assert lines == [("ref threshold", "25.0"), ("ref limit", "6.0")]
    labels = [n.text() for n in chart.iter("text") if "ref-label" in str(n.attrs["class"])]
    assert labels == ["OOMImminent > 80% of the limit (2.4G)", "memory limit 3G"]
    points = str(next(chart.iter("polyline")).attrs["points"]).split()
    assert (points[0], points[-1], len(points)) == ("50.0,98.0", "414.0,34.6", 41)


_EXPECTED = "window: expected a duration such as 15m, from 1s to 1h5m"


@pytest.mark.parametrize(
    ("window", "text"),
    [
        ("abc", f"{_EXPECTED}, got 'abc'"),
        ("15", f"{_EXPECTED}, got '15'"),
        ("0s", f"{_EXPECTED} (the history kept), got '0s'"),
        ("2h", f"{_EXPECTED} (the history kept), got '2h'"),
    ],
)
async def test_a_bad_window_is_a_400_that_says_what_was_expected(
    registry: CollectorRegistry, window: str, text: str
) -> None:
    """?window must be a duration from 1s to the history kept; anything else is refused."""
    assert await _young_pod_page(registry, f"?window={window}") == (400, text + "\n")
