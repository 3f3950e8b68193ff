"""Shared by the status page tests: a tiny DOM built with html.parser, fabricated views, the app."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser

from aiohttp import web
from prometheus_client import CollectorRegistry

from sidecar.core.model import LabelSet, labelset
from sidecar.store import Store
from sidecar.web.server import build_app
from sidecar.web.status import routes
from sidecar.web.status_view import (
    ActionRecord,
    ActiveAlert,
    BreakerEvent,
    BreakerStatus,
    ReconcileStatus,
    RuleStatus,
    StatusSource,
    StatusView,
    TargetStatus,
)
from sidecar.web.svgchart import chart_series
from sidecar.web.thresholds import chart_refs

NOW = 1_700_000_000_000
"""2023-11-14T22:13:20Z."""
HOSTILE = "<script>alert(1)</script>\"'&"
WINDOW_MS = 3_900_000

ORDERS = labelset({"__name__": "cache_keys_total", "cache": "orders"})
_VOID = frozenset({"meta", "br", "hr", "img", "input", "link", "col", "wbr", "source"})


@dataclass
class Node:
    """One element: its tag, attributes and children (elements and text)."""

    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        """Every text inside, pieces joined by one space, whitespace collapsed."""
        return " ".join(" ".join(self._pieces()).split())

    def _pieces(self) -> Iterator[str]:
        for c in self.children:
            if isinstance(c, str):
                yield c
            else:
                yield from c._pieces()

    def iter(self, tag: str | None = None) -> Iterator[Node]:
        """This element and every element below it, in document order (``tag`` filters)."""
        if tag is None or self.tag == tag:
            yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter(tag)

    def by_id(self, ident: str) -> Node:
        """The one element with this id (AssertionError when absent or repeated)."""
        found = [n for n in self.iter() if n.attrs.get("id") == ident]
        assert len(found) == 1, f"{len(found)} elements with id {ident!r}"
        return found[0]

    def rows(self) -> list[list[str]]:
        """A table's body rows as cell texts."""
        body = next(self.iter("tbody"))
        return [[c.text() for c in tr.children if isinstance(c, Node)] for tr in body.iter("tr")]

    def heads(self) -> list[str]:
        """A table's column headings."""
        return [th.text() for th in next(self.iter("thead")).iter("th")]

    def grid(self) -> list[list[str]]:
        """A table as its headings, then its body rows."""
        return [self.heads(), *self.rows()]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        top = self.stack.pop()
        if top.tag != tag:
            self.errors.append(f"</{tag}> closes <{top.tag}>")

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_html(text: str) -> Node:
    """Parse a document, asserting that every element is closed where it was opened."""
    b = _Builder()
    b.feed(text)
    b.close()
    assert b.errors == []
    assert [n.tag for n in b.stack] == ["#document"]
    return b.root


def chart_store() -> Store:
    """Three series: a long growing one, one with a staleness gap, one flat and short."""
    store = Store(retention_ms=WINDOW_MS, max_series=100)
    for k in range(720):
        samples: dict[LabelSet, float] = {
            labelset({"__name__": "conn_pool_active", "pool": "db"}): 10 + 5 * math.sin(k / 9),
        }
        # Absent from ten scrapes: the store ends it with a staleness marker at k=300.
        if not 300 <= k < 310:
            samples[ORDERS] = 1000.0 + k * 7
        if k >= 700:
            samples[labelset({"__name__": "cache_keys_total", "cache": HOSTILE})] = 42.0
        store.ingest(NOW - 3_595_000 + k * 5000, samples)
    return store


ALERT_LABELS = labelset(
    {"alertname": "CacheKeysGrowing", "action": "circuit_break", "severity": "page"}
)


def rich_view() -> StatusView:
    """A sidecar in trouble: target up, one alert firing, the circuit open, charts."""
    charts = chart_series(
        chart_store(),
        ["cache_keys_total", "conn_pool_active", "missing_metric"],
        now_ms=NOW,
        window_ms=WINDOW_MS,
        max_points=300,
        max_charts=12,
    )
    return StatusView(
        now_ms=NOW,
        target=TargetStatus(
            url="http://127.0.0.1:8080/debug/vars",
            health="up",
            last_scrape_ms=NOW - 3000,
            duration_s=0.042,
            body_bytes=12601,
            series=312,
            interval_s=15.0,
        ),
        rules=(
            RuleStatus(
                group="leaks",
                name="CacheKeysGrowing",
                kind="alerting",
                expr="rate(cache_keys_total[10m]) > 500",
                state="firing",
                health="ok",
                last_value=812.5,
                last_eval_ms=NOW - 4000,
            ),
            RuleStatus(
                group="leaks",
                name="PoolSaturated",
                kind="alerting",
                expr="avg_over_time(conn_pool_active[5m]) > 95",
                state="inactive",
                health="err",
                last_eval_ms=NOW - 4000,
                last_error='unknown function "foo"',
            ),
            RuleStatus(
                group="records",
                name="job:heap:avg",
                kind="recording",
                expr="avg_over_time(go_memstats_heap_inuse_bytes[5m])",
                health="ok",
                last_value=1.5e9,
                last_eval_ms=NOW - 61_000,
            ),
        ),
        alerts=(
            ActiveAlert(ALERT_LABELS, "firing", NOW - 125_000, 812.5, "cache keys grow 812/s"),
        ),
        breaker=BreakerStatus(
            state="open",
            since_ms=NOW - 120_000,
            reason="alert CacheKeysGrowing firing",
            source="alert",
            holders=(ALERT_LABELS,),
            earliest_reset_ms=NOW + 180_000,
            history=(
                BreakerEvent(NOW - 120_000, "open", "alert CacheKeysGrowing firing", "alert"),
                BreakerEvent(NOW - 1_800_000, "closed", "manual reset", "operator"),
            ),
            desired="open",
            generation=7,
            observed="open",
            observed_generation=7,
            observed_ms=NOW - 119_000,
            in_sync=True,
            reconcile=ReconcileStatus(NOW - 119_000, "confirmed", "decision", 2),
        ),
        actions=(
            ActionRecord(
                NOW - 119_000,
                "circuit_break",
                "rules",
                "alert CacheKeysGrowing firing",
                "success",
                2,
            ),
            ActionRecord(
                NOW - 1_800_000,
                "circuit_reset",
                "operator",
                "manual reset",
                "gave_up",
                5,
                "503 Service Unavailable",
            ),
        ),
        charts=charts,
    )


class FixedSource:
    """A ``StatusSource`` that always shows the same view."""

    retention_ms = WINDOW_MS

    def __init__(self, view: StatusView) -> None:
        self.view = view

    def status(self, window_ms: int | None = None) -> StatusView:
        """The view given at construction, whatever the window."""
        return self.view


MIB = 1024 * 1024
LIMIT = 3_000_000_000
HEAP = "go_memstats_heap_inuse_bytes"
OOM_IMMINENT = f"{HEAP} / (leak_sidecar_app_memory_limit_bytes > 0) > 0.8"


def young_pod_store() -> Store:
    """A pod ten minutes old: the heap from 100M to 2.1G, scraped every 15s, and the
    chart store's hour of other series."""
    store = chart_store()
    for k in range(41):
        store.ingest(NOW - 600_000 + k * 15_000, {labelset({"__name__": HEAP}): 1e8 + k * 5e7})
    return store


class ChartSource:
    """A ``StatusSource`` whose charts are built per request from a store, as the
    sidecar's are: over the data there is, or the window asked for."""

    retention_ms = WINDOW_MS

    def __init__(self, view: StatusView, store: Store, names: list[str]) -> None:
        self.view = view
        self.store = store
        self.names = names

    def status(self, window_ms: int | None = None) -> StatusView:
        """The view with charts over ``window_ms``, or over the data there is."""
        charts = chart_series(
            self.store,
            self.names,
            now_ms=NOW,
            window_ms=window_ms or WINDOW_MS,
            fit=window_ms is None,
            refs=chart_refs([("OOMImminent", OOM_IMMINENT)], LIMIT),
        )
        return replace(
            self.view, charts=charts, window_ms=window_ms, retention_ms=self.retention_ms
        )


def status_app(
    registry: CollectorRegistry,
    view: StatusView,
    refresh_s: int = 10,
    source: StatusSource | None = None,
) -> web.Application:
    """The sidecar's real HTTP app, token required, serving ``view`` as the status page
    (or what ``source`` builds)."""
    return build_app(
        registry=registry,
        token="tok",
        max_body_bytes=1024,
        health=lambda: (True, "ok"),
        ready=lambda: (True, "ok"),
        routes=routes(source or FixedSource(view), refresh_s=refresh_s),
    )
