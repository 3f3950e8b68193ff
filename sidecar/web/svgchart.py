"""Small line charts of stored series for the status page: selection, downsampling, SVG.

A chart shows one series over the span of the data there is (from the oldest sample of
the charted series, so that a new pod's first minutes fill the chart rather than sit in
a sliver at its right edge), or over a window the reader chose. It may carry reference
lines (``web.thresholds``): the threshold of a rule that compares the series with a
constant or with the memory limit, and the limit itself; the value axis stretches to
show them, so the heap is seen against the limit on one chart. The store may hold thousands of
samples per series, the page must stay small, so a series with more samples than
``max_points`` is cut into ``max_points // 2`` equal time buckets and each bucket keeps
only its lowest and its highest sample (in time order): the line keeps every spike and
every trough a pixel column could show, and the chart's min/max labels stay exact.

Staleness markers break the line: "no data" must not look like a straight ramp from the
last value before the gap to the first after it. While downsampling, a bucket that holds
a marker is drawn as part of the gap (its few other samples are sub-pixel anyway), which
keeps the point bound strict whatever the series does.
"""

from __future__ import annotations

import heapq
import html
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sidecar.core.model import LabelSet, is_stale
from sidecar.core.times import time_of_day
from sidecar.store import SeriesView, StoreView
from sidecar.web.thresholds import RefLine
from sidecar.web.units import si

__all__ = [
    "ChartSeries",
    "ChartSet",
    "chart_series",
    "downsample",
    "render_chart",
]

Point = tuple[int, float]
Line = tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class ChartSeries:
    """One series, ready to draw: lines of (t ms, value) over ``[lo_ms, hi_ms]``."""

    labels: LabelSet
    lo_ms: int
    hi_ms: int
    lines: tuple[Line, ...]
    """Runs of points between staleness markers, oldest first."""
    samples: int
    """Samples of the series in the window (markers included), before downsampling."""
    last: Point | None
    """The newest plottable sample in the window."""
    stale: bool
    """The series' newest sample is a staleness marker: it has no current value."""
    refs: tuple[RefLine, ...] = ()
    """Horizontal lines drawn across the chart: thresholds, the memory limit."""

    @property
    def points(self) -> int:
        """How many points the chart draws."""
        return sum(len(line) for line in self.lines)

    def value_range(self) -> tuple[float, float] | None:
        """Lowest and highest value drawn, reference lines included, or ``None`` with no
        data to draw."""
        values = [v for line in self.lines for _, v in line]
        if not values:
            return None
        values.extend(r.value for r in self.refs)
        return min(values), max(values)


@dataclass(frozen=True, slots=True)
class ChartSet:
    """The charts the page shows, and how many matching series did not fit."""

    series: tuple[ChartSeries, ...] = ()
    omitted: int = 0


def chart_series(
    store: StoreView,
    names: Iterable[str],
    *,
    now_ms: int,
    window_ms: int,
    max_points: int = 300,
    max_charts: int = 12,
    fit: bool = False,
    refs: Mapping[str, tuple[RefLine, ...]] | None = None,
) -> ChartSet:
    """Chart every series named in ``names`` (in that order), at most ``max_charts``.

    With ``fit`` the charts span from the oldest sample any of them holds within
    ``window_ms`` to ``now_ms`` (one time axis for all, so they line up); without, the
    whole window. ``refs`` gives the reference lines of each metric name.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    if window_ms <= 0:
        raise ValueError(f"window_ms must be positive, got {window_ms}")
    lo = now_ms - window_ms
    chosen: list[tuple[str, SeriesView]] = []
    omitted = 0
    for name in dict.fromkeys(names):
        matching = list(store.by_name(name))
        # Runs on every page view: only the series that get a chart are put in order.
        shown = heapq.nsmallest(max_charts - len(chosen), matching, key=lambda s: s.labels)
        chosen.extend((name, s) for s in shown)
        omitted += len(matching) - len(shown)
    if fit:
        firsts = [t for _, s in chosen if (t := _first(s, lo, now_ms)) is not None]
        lo = min(firsts, default=lo)
    lines = refs or {}
    charts = tuple(
        _with_refs(downsample(s, lo, now_ms, max_points), lines.get(name, ())) for name, s in chosen
    )
    return ChartSet(charts, omitted)


def _first(series: SeriesView, lo: int, hi: int) -> int | None:
    """The time of the oldest sample of ``series`` in ``[lo, hi]``, if it has one."""
    ts, _, i, j = series.window(lo, hi)
    return ts[i] if j > i else None


def _with_refs(chart: ChartSeries, refs: tuple[RefLine, ...]) -> ChartSeries:
    if not refs:
        return chart
    return ChartSeries(
        chart.labels, chart.lo_ms, chart.hi_ms, chart.lines, chart.samples, chart.last,
        chart.stale, refs,
    )  # fmt: skip


def downsample(series: SeriesView, lo: int, hi: int, max_points: int) -> ChartSeries:
    """The samples of ``series`` in ``[lo, hi]`` as at most ``max_points`` points."""
    ts, vs, i, j = series.window(lo, hi)
    lines: list[Line] = []
    line: list[Point] = []
    if j - i <= max_points:
        for k in range(i, j):
            t, v = ts[k], vs[k]
            # Finite first: almost every sample is, and is_stale is the costlier test.
            if math.isfinite(v):
                line.append((t, v))
            elif is_stale(v):
                if line:
                    lines.append(tuple(line))
                line = []
    else:
        buckets = max_points // 2
        width = hi - lo + 1
        current = gap = -1
        lo_pt: Point | None = None
        hi_pt: Point | None = None
        for k in range(i, j):
            t, v = ts[k], vs[k]
            b = (t - lo) * buckets // width
            if b != current:
                _flush(line, lo_pt, hi_pt)
                lo_pt = hi_pt = None
                current = b
            if math.isfinite(v):
                if b == gap:
                    continue
                if lo_pt is None or v < lo_pt[1]:
                    lo_pt = (t, v)
                if hi_pt is None or v > hi_pt[1]:
                    hi_pt = (t, v)
            elif is_stale(v):
                # The whole bucket joins the gap: drop what it gathered, end the line.
                lo_pt = hi_pt = None
                gap = b
                if line:
                    lines.append(tuple(line))
                line = []
        _flush(line, lo_pt, hi_pt)
    if line:
        lines.append(tuple(line))
    last = next(((ts[k], vs[k]) for k in range(j - 1, i - 1, -1) if math.isfinite(vs[k])), None)
    return ChartSeries(series.labels, lo, hi, tuple(lines), j - i, last, series.stale)


def _flush(line: list[Point], lo_pt: Point | None, hi_pt: Point | None) -> None:
    if lo_pt is None or hi_pt is None:
        return
    if lo_pt == hi_pt:
        line.append(lo_pt)
    else:
        line.extend(sorted((lo_pt, hi_pt)))


def _clock(ms: int) -> str:
    return time_of_day(ms)


# Geometry of the drawing, in viewBox units: one unit is one CSS pixel at 420 wide, about
# what a chart gets in a three-column grid on a laptop screen.
_W, _H = 420, 120
_X0, _X1, _Y0, _Y1 = 50, 414, 6, 98


def _ref(r: RefLine, vmin: float, ys: float, vspan: float, ymid: float) -> str:
    """A dashed line across the plot at ``r.value``, its label above its right end."""
    y = _Y1 - (r.value - vmin) * ys if vspan > 0 else ymid
    # Near the top the label goes under the line, so that it stays inside the frame.
    ty = y + 11 if y < _Y0 + 12 else y - 3
    text = html.escape(r.label, quote=True)
    return (
        f'<line class="ref {r.kind}" x1="{_X0}" y1="{y:.1f}" x2="{_X1}" y2="{y:.1f}"/>'
        f'<text class="ref-label {r.kind}" x="{_X1 - 3}" y="{ty:.1f}" text-anchor="end">'
        f"{text}</text>"
    )


def render_chart(chart: ChartSeries, label: str) -> str:
    """The chart as inline SVG; ``label`` names the series for screen readers."""
    span = max(chart.hi_ms - chart.lo_ms, 1)
    rng = chart.value_range()
    vmin, vmax = rng if rng is not None else (0.0, 0.0)
    # A flat series is drawn across the middle instead of dividing by zero.
    vspan = vmax - vmin
    xs = (_X1 - _X0) / span
    ys = (_Y1 - _Y0) / vspan if vspan > 0 else 0.0
    ymid = (_Y0 + _Y1) / 2
    shapes: list[str] = []
    for line in chart.lines:
        coords = [
            (
                _X0 + (t - chart.lo_ms) * xs,
                _Y1 - (v - vmin) * ys if vspan > 0 else ymid,
            )
            for t, v in line
        ]
        if len(coords) == 1:
            # A lone point between two gaps would be an invisible polyline.
            (x, y) = coords[0]
            shapes.append(f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="2"/>')
        else:
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            shapes.append(f'<polyline class="line" points="{pts}"/>')
    if rng is not None:
        shapes.extend(_ref(r, vmin, ys, vspan, ymid) for r in chart.refs)
    if rng is None:
        shapes.append(
            f'<text class="none" x="{(_X0 + _X1) / 2:.0f}" y="{ymid + 4:.0f}" '
            'text-anchor="middle">no data in window</text>'
        )
    summary = (
        f"{label}: no data in window"
        if rng is None
        else f"{label}: from {si(vmin)} to {si(vmax)}, {chart.points} points"
        + "".join(f"; {r.label}" for r in chart.refs)
    )
    title = html.escape(summary, quote=True)
    top = si(vmax) if rng is not None else ""
    bottom = si(vmin) if rng is not None else ""
    return (
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{title}">'
        f"<title>{title}</title>"
        f'<rect class="frame" x="{_X0}" y="{_Y0}" width="{_X1 - _X0}" height="{_Y1 - _Y0}"/>'
        f'<text class="axis ymax" x="{_X0 - 6}" y="{_Y0 + 10}" text-anchor="end">{top}</text>'
        f'<text class="axis ymin" x="{_X0 - 6}" y="{_Y1}" text-anchor="end">{bottom}</text>'
        f'<text class="axis xmin" x="{_X0}" y="{_H - 8}">{_clock(chart.lo_ms)}</text>'
        f'<text class="axis xmax" x="{_X1}" y="{_H - 8}" text-anchor="end">'
        f"{_clock(chart.hi_ms)}</text>"
        f"{''.join(shapes)}</svg>"
    )
