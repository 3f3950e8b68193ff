"""HTML for the status page: a ``StatusView`` in, one self-contained document out.

Markup is built with ``_el``, which escapes every child and every attribute value unless
it is already ``_Html`` (made by ``_el`` itself or by the chart renderer): escaping is the
default and forgetting it is not possible by omission. Long foreign text is clipped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence

from sidecar.core.durations import format_duration, format_duration_ms
from sidecar.core.errors import clip
from sidecar.core.model import LabelSet, metric_name
from sidecar.core.times import iso_seconds
from sidecar.web.status_style import CSS as _CSS
from sidecar.web.status_view import (
    ActionRecord,
    ActiveAlert,
    BreakerStatus,
    RuleStatus,
    StatusView,
    TargetStatus,
)
from sidecar.web.svgchart import ChartSeries, render_chart
from sidecar.web.units import format_bytes

__all__ = ["format_labels", "format_value", "render_page"]

_NONE = "\u2014"  # an em dash: "no value" reads better than an empty cell

# Badge tone per state word: the word is always printed, the colour only repeats it.
_TONE = {
    "up": "good",
    "ok": "good",
    "closed": "good",
    "success": "good",
    "down": "bad",
    "err": "bad",
    "firing": "bad",
    "open": "bad",
    "rejected": "bad",
    "gave_up": "bad",
    "held": "held",
    "pending": "warn",
    "dry_run": "warn",
    "dry-run": "warn",
    "confirmed": "good",
    "in sync": "good",
    "unavailable": "bad",
    "disagreed": "bad",
    "converging": "warn",
    "panic": "bad",
}


class _Html(str):
    """Text that is already markup; everything else is escaped on the way in."""

    __slots__ = ()


def _esc(value: object) -> _Html:
    if isinstance(value, _Html):
        return value
    return _Html(html.escape(str(value), quote=True))


def _cat(parts: Iterable[object]) -> _Html:
    return _Html("".join(_esc(p) for p in parts if p is not None))


def _el(tag: str, *children: object, **attrs: object) -> _Html:
    """``<tag attrs>children</tag>``; ``class_`` is ``class``, ``aria_label`` is ``aria-label``."""
    names = "".join(
        f' {k.rstrip("_").replace("_", "-")}="{_esc(v)}"' for k, v in attrs.items() if v is not None
    )
    return _Html(f"<{tag}{names}>{_cat(children)}</{tag}>")


def format_value(v: float | None) -> str:
    """A sample value as Prometheus prints it: integers whole, others to 6 digits."""
    if v is None:
        return _NONE
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.6g}"


def format_labels(labels: LabelSet) -> str:
    """A label set in PromQL's selector form: ``name{a="x", b="y"}`` (values as given)."""
    inner = ", ".join(f'{k}="{v}"' for k, v in labels if k != "__name__")
    return f"{metric_name(labels)}{{{inner}}}" if inner else metric_name(labels) or "{}"


def _badge(word: str, ident: str | None = None) -> _Html:
    tone = _TONE.get(word, "")
    return _el("span", word, class_=f"badge {tone}".strip(), id=ident)


def _when(now: int, ms: int | None) -> _Html:
    """A relative time (``12s ago``, ``in 4m``) with the exact instant in ``datetime``/title."""
    if ms is None:
        return _Html(_NONE)
    delta = round((now - ms) / 1000)
    text = f"{format_duration(delta)} ago" if delta >= 0 else f"in {format_duration(-delta)}"
    stamp = iso_seconds(ms)
    return _el("time", text, datetime=stamp, title=stamp)


def _bytes(n: int | None) -> str:
    return _NONE if n is None else f"{format_bytes(n)} ({n} B)" if n >= 1024 else f"{n} B"


def _seconds(s: float | None) -> str:
    if s is None:
        return _NONE
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def _chips(labels: LabelSet, skip: Iterable[str] = ()) -> _Html:
    skipped = set(skip)
    return _cat(
        _el("span", f'{k}="{clip(v)}"', class_="lbl") for k, v in labels if k not in skipped
    )


def _kv(rows: Iterable[tuple[str, str, object]]) -> _Html:
    """A two-column table of (id, heading, cell) rows."""
    body = _cat(
        _el("tr", _el("th", head, scope="row"), _el("td", cell, id=ident))
        for ident, head, cell in rows
    )
    return _el("table", _el("tbody", body), class_="kv")


def _table(ident: str, heads: Iterable[str], rows: Iterable[Iterable[_Html]]) -> _Html:
    thead = _el("thead", _el("tr", _cat(_el("th", h, scope="col") for h in heads)))
    tbody = _el("tbody", _cat(_el("tr", _cat(row)) for row in rows))
    return _el("table", thead, tbody, id=ident)


def _table_or_note(
    ident: str, heads: Iterable[str], rows: Sequence[Iterable[_Html]], note_id: str, note: str
) -> _Html:
    """The table of ``rows``, or with none the ``note`` that says why the page shows none."""
    if not rows:
        return _el("p", note, class_="empty", id=note_id)
    return _table(ident, heads, rows)


def _section(ident: str, title: str, *body: object) -> _Html:
    return _el("section", _el("h2", title, id=f"{ident}-h"), *body, aria_labelledby=f"{ident}-h")


def _target(now: int, t: TargetStatus) -> _Html:
    return _section(
        "target",
        "Target",
        _kv(
            [
                ("target-url", "Expvar URL", _el("code", clip(t.url))),
                ("target-health", "Health", _badge(t.health)),
                ("target-last-scrape", "Last scrape", _when(now, t.last_scrape_ms)),
                ("target-duration", "Duration", _seconds(t.duration_s)),
                ("target-body", "Body size", _bytes(t.body_bytes)),
                ("target-series", "Series", _NONE if t.series is None else str(t.series)),
                (
                    "target-interval",
                    "Interval",
                    _NONE if t.interval_s is None else format_duration(t.interval_s),
                ),
                (
                    "target-error",
                    "Last error",
                    _el("span", clip(t.error), class_="err") if t.error else _NONE,
                ),
            ]
        ),
    )


def _fleet(line: str) -> _Html:
    # Panic is said loudly: the workload's automatic breaks are suspended.
    if line.startswith("PANIC"):
        return _cat([_badge("panic"), _Html(" "), _el("span", clip(line))])
    return _el("span", clip(line))


def _breaker(now: int, b: BreakerStatus) -> _Html:
    holders = _cat(_el("div", _chips(h)) for h in b.holders) if b.holders else _Html(_NONE)
    mode = _badge("dry-run") if b.dry_run else _Html("live")
    history = [
        (
            _el("td", _when(now, e.at_ms)),
            _el("td", _badge(e.state)),
            _el("td", clip(e.source)),
            _el("td", clip(e.reason)),
        )
        for e in b.history
    ]
    return _section(
        "breaker",
        "Circuit breaker",
        _kv(
            [
                ("breaker-state", "State", _badge(b.state)),
                ("breaker-mode", "Mode", mode),
                ("breaker-since", "Since", _when(now, b.since_ms)),
                ("breaker-reason", "Reason", clip(b.reason) or _NONE),
                ("breaker-source", "Source", clip(b.source) or _NONE),
                ("breaker-holders", "Held open by", holders),
                ("breaker-reset", "Earliest auto-reset", _when(now, b.earliest_reset_ms)),
                *_reconcile_rows(now, b),
                *([("breaker-fleet", "Fleet budget", _fleet(b.fleet))] if b.fleet else []),
            ]
        ),
        _el("h3", "Recent changes", class_="muted"),
        _table_or_note(
            "breaker-history",
            ("When", "State", "Source", "Reason"),
            history,
            "breaker-history-empty",
            "No state changes yet.",
        ),
    )


def _reconcile_rows(now: int, b: BreakerStatus) -> list[tuple[str, str, object]]:
    """Desired against observed: what was decided, what the app confirmed, the last try."""
    observed: object = _NONE
    if b.observed is not None:
        gen = "" if b.observed_generation is None else f" (generation {b.observed_generation})"
        observed = _cat((_badge(b.observed), gen, " ", _when(now, b.observed_ms)))
    last: object = _NONE
    r = b.reconcile
    if r is not None:
        error = f": {clip(r.error)}" if r.error else ""
        last = _cat(
            (_badge(r.outcome), " ", _when(now, r.at_ms), f" {clip(r.trigger)}, ",
             f"{r.attempts} call(s){error}")
        )  # fmt: skip
    return [
        ("circuit-desired", "Desired", _cat((_badge(b.desired), f" (generation {b.generation})"))),
        ("circuit-observed", "Observed", observed),
        ("circuit-sync", "App", _badge("in sync" if b.in_sync else "converging")),
        ("circuit-reconcile", "Last reconcile", last),
    ]


def _alerts(now: int, alerts: tuple[ActiveAlert, ...]) -> _Html:
    rows = [
        (
            _el("td", clip(dict(a.labels).get("alertname", _NONE))),
            _el("td", _badge(a.state)),
            _el("td", _when(now, a.since_ms)),
            _el("td", format_value(a.value), class_="num"),
            _el("td", _chips(a.labels, ("alertname",))),
            _el("td", clip(a.summary)),
        )
        for a in alerts
    ]
    heads = ("Alert", "State", "Since", "Value", "Labels", "Summary")
    return _section(
        "alerts",
        f"Active alerts ({len(alerts)})",
        _table_or_note("alerts-table", heads, rows, "alerts-empty", "No pending or firing alerts."),
    )


def _rules(now: int, rules: tuple[RuleStatus, ...]) -> _Html:
    rows = [
        (
            _el("td", clip(r.group)),
            _el("td", _el("strong", clip(r.name)), _el("code", clip(r.expr), class_="expr")),
            _el("td", _badge(r.state) if r.state else _Html("recording")),
            _el("td", _badge(r.health)),
            _el("td", format_value(r.last_value), class_="num"),
            _el("td", _when(now, r.last_eval_ms)),
            _el("td", clip(r.last_error), class_="err"),
        )
        for r in rules
    ]
    heads = ("Group", "Rule", "State", "Health", "Last value", "Evaluated", "Last error")
    return _section(
        "rules",
        f"Rules ({len(rules)})",
        _table_or_note("rules-table", heads, rows, "rules-empty", "No rules loaded."),
    )


def _actions(now: int, actions: tuple[ActionRecord, ...]) -> _Html:
    rows = [
        (
            _el("td", _when(now, a.at_ms)),
            _el("td", clip(a.action)),
            _el("td", clip(a.source)),
            _el("td", clip(a.reason)),
            _el("td", _badge(clip(a.outcome))),
            _el("td", str(a.attempts), class_="num"),
            _el("td", clip(a.error), class_="err"),
        )
        for a in actions
    ]
    heads = ("When", "Action", "Source", "Reason", "Outcome", "Attempts", "Error")
    return _section(
        "actions",
        "Recent actions",
        _table_or_note("actions-table", heads, rows, "actions-empty", "No actions yet."),
    )


def _chart(index: int, c: ChartSeries) -> _Html:
    name = clip(format_labels(c.labels))
    last = _NONE if c.last is None else format_value(c.last[1])
    note = " (stale)" if c.stale else ""
    return _el(
        "figure",
        _el(
            "figcaption",
            _el("code", name),
            " ",
            _el("span", f"last {last}{note}, {c.samples} samples", class_="muted"),
        ),
        _Html(render_chart(c, name)),
        id=f"chart-{index}",
    )


_WINDOWS_MS = (5 * 60_000, 15 * 60_000, 3_600_000, 6 * 3_600_000, 86_400_000)


def _windows(view: StatusView) -> _Html:
    """The spans the reader can pick: the data there is, or a window back from now."""
    cap = view.retention_ms
    choices: list[tuple[str, str, bool]] = [("data there is", "?", view.window_ms is None)]
    for ms in _WINDOWS_MS:
        if cap is None or ms <= cap:
            text = format_duration_ms(ms)
            choices.append((text, f"?window={text}", view.window_ms == ms))
    if view.window_ms is not None and not any(on for *_, on in choices):
        choices.append((format_duration_ms(view.window_ms), "", True))
    links = _cat(
        _el("strong", text, aria_current="true") if on else _el("a", text, href=href)
        for text, href, on in choices
    )
    return _el("p", "Span: ", links, class_="windows muted", id="charts-window")


def _charts(view: StatusView) -> _Html:
    cs = view.charts
    if not cs.series:
        body = _el("p", "No series to chart.", class_="empty", id="charts-empty")
    else:
        grid = _el("div", _cat(_chart(i, c) for i, c in enumerate(cs.series)), class_="charts")
        more = (
            _el("p", f"{cs.omitted} more series not shown.", class_="muted", id="charts-omitted")
            if cs.omitted
            else None
        )
        body = _cat((grid, more))
    return _section("charts", "Series the rules read", _windows(view), body)


def _summary(view: StatusView) -> _Html:
    firing = sum(1 for a in view.alerts if a.state == "firing")
    generated = iso_seconds(view.now_ms)
    return _el(
        "ul",
        _el("li", "target ", _badge(view.target.health, "summary-target")),
        _el("li", "circuit ", _badge(view.breaker.state, "summary-circuit")),
        _el("li", _el("span", f"{firing} firing", id="summary-firing")),
        _el("li", "generated ", _el("time", generated, datetime=generated)),
        # The bundles themselves need the bearer token: profiles are sensitive.
        _el("li", _el("a", "evidence", href="/v1/evidence", id="summary-evidence")),
        class_="summary",
    )


def render_page(view: StatusView, *, refresh_s: int = 10) -> str:
    """The whole document for ``view``; ``refresh_s`` 0 leaves out the reload."""
    now = view.now_ms
    refresh = _Html(f'<meta http-equiv="refresh" content="{int(refresh_s)}">') if refresh_s else ""
    main = _el(
        "main",
        _el("div", _target(now, view.target), _breaker(now, view.breaker), class_="cols"),
        _alerts(now, view.alerts),
        _rules(now, view.rules),
        _actions(now, view.actions),
        _charts(view),
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{refresh}<title>leak-sidecar status</title><style>{_CSS}</style></head>"
        f"<body>{_el('header', _el('h1', 'leak-sidecar'), _summary(view))}{main}</body></html>"
    )
