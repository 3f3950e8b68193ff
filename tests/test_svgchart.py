"""Charts of stored series: which series, how they are downsampled, how they are drawn."""

from __future__ import annotations

import math

import pytest
from status_support import HOSTILE, Node, parse_html

from sidecar.core.model import STALE_NAN, LabelSet, labelset
from sidecar.store import Series, Store
from sidecar.web.svgchart import ChartSeries, chart_series, downsample, render_chart
from sidecar.web.thresholds import RefLine

LABELS = labelset({"__name__": "heap_bytes", "pod": "a"})


def _series(values: list[float], step_ms: int = 2000) -> Series:
    s = Series(LABELS, "scrape")
    for k, v in enumerate(values):
        s.append(k * step_ms, v)
    return s


def test_small_series_is_kept_exactly_and_skips_unplottable_values() -> None:
    """Up to max_points samples are all drawn; NaN and infinities are left out, not drawn."""
    s = _series([1.0, math.nan, 3.0, math.inf, 5.0])
    c = downsample(s, 0, 10_000, max_points=300)
    assert c.lines == (((0, 1.0), (4000, 3.0), (8000, 5.0)),)
    assert (c.samples, c.last, c.stale) == (5, (8000, 5.0), False)


def test_staleness_marker_breaks_the_line() -> None:
    """A staleness marker ends one line and the next sample starts another."""
    s = _series([1.0, 2.0, STALE_NAN, 4.0, 5.0])
    c = downsample(s, 0, 10_000, max_points=300)
    assert c.lines == (((0, 1.0), (2000, 2.0)), ((6000, 4.0), (8000, 5.0)))


def test_series_ending_stale_is_marked_stale_with_its_last_value() -> None:
    """A series whose newest sample is a marker is stale; ``last`` is the value before it."""
    c = downsample(_series([1.0, 2.0, STALE_NAN]), 0, 10_000, max_points=300)
    assert (c.lines, c.last, c.stale) == ((((0, 1.0), (2000, 2.0)),), (2000, 2.0), True)


def test_downsampling_keeps_each_buckets_lowest_and_highest_sample() -> None:
    """750 rising samples in 150 buckets of five become each bucket's first and last."""
    c = downsample(_series([float(k) for k in range(750)]), 0, 1_499_999, max_points=300)
    (line,) = c.lines
    assert len(line) == 300
    assert line[:4] == ((0, 0.0), (8000, 4.0), (10_000, 5.0), (18_000, 9.0))
    assert line[-1] == (1_498_000, 749.0)
    assert c.samples == 750


def test_downsampling_keeps_a_one_sample_spike_and_the_exact_range() -> None:
    """A spike and a dip of one sample each survive downsampling, so min/max labels are exact."""
    values = [100.0 + (k % 7) for k in range(750)]
    values[123], values[500] = 1e6, -3.0
    c = downsample(_series(values), 0, 1_499_999, max_points=300)
    points = {p for line in c.lines for p in line}
    assert {(246_000, 1e6), (1_000_000, -3.0)} <= points
    assert c.value_range() == (-3.0, 1e6)
    assert (len(c.lines), c.points) == (1, 300)  # every bucket keeps two distinct samples


def test_downsampling_drops_the_bucket_holding_a_marker() -> None:
    """While downsampling, the bucket with the marker joins the gap; the bound stays strict."""
    values = [float(k) for k in range(750)]
    values[377] = STALE_NAN  # bucket 75: samples 375..379
    c = downsample(_series(values), 0, 1_499_999, max_points=300)
    first, second = c.lines
    assert (first[-1], second[0]) == ((748_000, 374.0), (760_000, 380.0))
    assert c.points == 298


def test_flapping_series_stays_within_the_point_bound() -> None:
    """A marker in every other bucket gives 75 short lines of 2 points, never more points."""
    values = [STALE_NAN if k % 10 == 0 else float(k) for k in range(750)]
    c = downsample(_series(values), 0, 1_499_999, max_points=300)
    assert (len(c.lines), c.points) == (75, 150)


def test_window_leaves_out_older_samples() -> None:
    """Only samples in [lo, hi] are charted."""
    c = downsample(_series([1.0, 2.0, 3.0, 4.0]), 2000, 4000, max_points=300)
    assert (c.lines, c.samples, c.lo_ms, c.hi_ms) == ((((2000, 2.0), (4000, 3.0)),), 2, 2000, 4000)


def _store() -> Store:
    store = Store(retention_ms=600_000, max_series=100)
    for t in (1000, 2000, 3000):
        store.ingest(
            t,
            {
                labelset({"__name__": "b", "x": "2"}): 1.0,
                labelset({"__name__": "b", "x": "1"}): 2.0,
                labelset({"__name__": "a"}): 3.0,
            },
        )
    return store


def test_chart_series_follows_the_names_and_sorts_by_labels() -> None:
    """Series come in the order of the names given (once each), sorted by labels within one."""
    cs = chart_series(_store(), ["b", "missing", "a", "b"], now_ms=3000, window_ms=600_000)
    assert [c.labels for c in cs.series] == [
        (("__name__", "b"), ("x", "1")),
        (("__name__", "b"), ("x", "2")),
        (("__name__", "a"),),
    ]
    assert cs.omitted == 0
    assert cs.series[0].lines == (((1000, 2.0), (2000, 2.0), (3000, 2.0)),)


def test_chart_series_caps_the_number_of_charts_and_counts_the_rest() -> None:
    """Past max_charts, series are counted as omitted instead of charted."""
    cs = chart_series(_store(), ["b", "a"], now_ms=3000, window_ms=600_000, max_charts=1)
    assert ([c.labels for c in cs.series], cs.omitted) == ([(("__name__", "b"), ("x", "1"))], 2)


@pytest.mark.parametrize(
    ("max_points", "window_ms", "message"),
    [
        (1, 600_000, "max_points must be at least 2, got 1"),
        (300, 0, "window_ms must be positive, got 0"),
    ],
)
def test_chart_series_refuses_bad_bounds(max_points: int, window_ms: int, message: str) -> None:
    """A point budget under 2 or an empty window is a caller's bug, reported as such."""
    with pytest.raises(ValueError) as info:
        chart_series(_store(), ["a"], now_ms=3000, window_ms=window_ms, max_points=max_points)
    assert str(info.value) == message


def _chart(lines: tuple[tuple[tuple[int, float], ...], ...], labels: LabelSet = LABELS) -> str:
    return render_chart(ChartSeries(labels, 0, 10_000, lines, 9, None, False), "heap_bytes")


def test_render_draws_one_polyline_per_line_with_axis_labels() -> None:
    """Each line is a polyline across the plot area; the axes name min, max and the window."""
    doc = parse_html(_chart((((0, 10.0), (5000, 2500.0)), ((7500, 1e6), (10_000, 20.0)))))
    polylines = [n.attrs["points"] for n in doc.iter("polyline")]
    assert polylines == ["50.0,98.0 232.0,97.8", "323.0,6.0 414.0,98.0"]
    texts = {n.attrs["class"]: n.text() for n in doc.iter("text")}
    assert texts == {
        "axis ymax": "1M",
        "axis ymin": "10",
        "axis xmin": "00:00:00Z",
        "axis xmax": "00:00:10Z",
    }
    (svg,) = doc.iter("svg")
    assert svg.attrs["aria-label"] == "heap_bytes: from 10 to 1M, 4 points"


def test_render_draws_a_lone_point_as_a_dot_and_a_flat_line_mid_height() -> None:
    """A line of one point is a dot; a series that never changes runs across the middle."""
    doc = parse_html(_chart((((0, 5.0),), ((5000, 5.0), (10_000, 5.0)))))
    assert [(n.attrs["cx"], n.attrs["cy"]) for n in doc.iter("circle")] == [("50.0", "52.0")]
    assert [n.attrs["points"] for n in doc.iter("polyline")] == ["232.0,52.0 414.0,52.0"]


def test_render_says_when_there_is_no_data() -> None:
    """A series with nothing plottable in the window says so instead of drawing an empty box."""
    doc = parse_html(_chart(()))
    assert [n.text() for n in doc.iter("text") if n.attrs["class"] == "none"] == [
        "no data in window"
    ]
    assert list(doc.iter("polyline")) == []


def test_render_escapes_the_label_in_title_and_aria_label() -> None:
    """The series label, attacker-chosen, is text in the SVG, never markup."""
    svg = render_chart(ChartSeries(LABELS, 0, 10_000, (), 0, None, False), HOSTILE)
    assert "<script" not in svg
    doc = parse_html(svg)
    (title,) = doc.iter("title")
    assert title.text() == f"{HOSTILE}: no data in window"
    assert next(doc.iter("svg")).attrs["aria-label"] == f"{HOSTILE}: no data in window"


def _young_pod() -> Store:
    store = Store(retention_ms=3_600_000, max_series=10)
    for k in range(41):  # ten minutes at 15s, ending at 3_600_000
        store.ingest(3_000_000 + k * 15_000, {LABELS: 1e8 + k * 5e7})
    return store


def test_charts_span_the_data_there_is_so_a_young_pod_fills_the_chart() -> None:
    """With ``fit`` the time axis starts at the oldest sample: ten minutes of a new pod
    run from the left edge to the right, not in the last sixth of an hour's window."""
    store = _young_pod()
    fitted = chart_series(store, ["heap_bytes"], now_ms=3_600_000, window_ms=3_600_000, fit=True)
    whole = chart_series(store, ["heap_bytes"], now_ms=3_600_000, window_ms=3_600_000)
    assert (fitted.series[0].lo_ms, whole.series[0].lo_ms) == (3_000_000, 0)
    xs = [
        [p.split(",")[0] for p in str(next(_svg(c).iter("polyline")).attrs["points"]).split()]
        for c in (fitted.series[0], whole.series[0])
    ]
    assert (xs[0][0], xs[0][-1]) == ("50.0", "414.0")
    assert (xs[1][0], xs[1][-1]) == ("353.3", "414.0")


def test_fitted_charts_share_one_time_axis_from_the_oldest_series() -> None:
    """Several charts fit to the oldest sample among them, so that they line up."""
    store = Store(retention_ms=3_600_000, max_series=10)
    older = labelset({"__name__": "heap_bytes", "pod": "b"})
    store.ingest(1_800_000, {older: 1.0})
    store.ingest(3_000_000, {older: 1.0, LABELS: 2e9})
    charts = chart_series(store, ["heap_bytes"], now_ms=3_600_000, window_ms=3_600_000, fit=True)
    assert [c.lo_ms for c in charts.series] == [1_800_000, 1_800_000]


def test_a_fitted_chart_without_data_keeps_the_window() -> None:
    """No sample in the window: the chart spans the window and says it has no data."""
    store = Store(retention_ms=60_000, max_series=10)
    store.ingest(0, {LABELS: 1.0})
    charts = chart_series(store, ["heap_bytes"], now_ms=600_000, window_ms=60_000, fit=True)
    assert (charts.series[0].lo_ms, charts.series[0].lines) == (540_000, ())


def _svg(chart: ChartSeries, label: str = "heap") -> Node:
    return parse_html(render_chart(chart, label))


def test_threshold_and_limit_lines_are_drawn_at_their_values() -> None:
    """The value axis stretches to the limit; the threshold and the limit are dashed lines
    at exact heights, each labelled inside the frame; the summary names them."""
    chart = ChartSeries(
        labelset({"__name__": "go_memstats_heap_inuse_bytes"}), 0, 1000,
        (((0, 1e9), (1000, 2e9)),), 2, (1000, 2e9), False,
        (RefLine(2.4e9, "threshold", "OOMImminent > 80% of the limit (2.4G)"),
         RefLine(3e9, "limit", "memory limit 3G")),
    )  # fmt: skip
    doc = _svg(chart)
    assert next(doc.iter("polyline")).attrs["points"] == "50.0,98.0 414.0,52.0"
    lines = [(n.attrs["class"], n.attrs["y1"], n.attrs["y2"], n.attrs["x1"], n.attrs["x2"])
             for n in doc.iter("line")]  # fmt: skip
    assert lines == [
        ("ref threshold", "33.6", "33.6", "50", "414"),
        ("ref limit", "6.0", "6.0", "50", "414"),
    ]
    labels = [(n.attrs["class"], n.attrs["y"], n.text()) for n in doc.iter("text")]
    assert labels == [
        ("axis ymax", "16", "3G"),
        ("axis ymin", "98", "1G"),
        ("axis xmin", "112", "00:00:00Z"),
        ("axis xmax", "112", "00:00:01Z"),
        ("ref-label threshold", "30.6", "OOMImminent > 80% of the limit (2.4G)"),
        ("ref-label limit", "17.0", "memory limit 3G"),
    ]
    assert next(doc.iter("svg")).attrs["aria-label"] == (
        "heap: from 1G to 3G, 2 points; OOMImminent > 80% of the limit (2.4G); memory limit 3G"
    )


def test_a_threshold_below_the_data_stretches_the_axis_down() -> None:
    """A threshold under every sample is still on the chart, at the bottom edge."""
    chart = ChartSeries(LABELS, 0, 1000, (((0, 50.0), (1000, 100.0)),), 2, (1000, 100.0),
                        False, (RefLine(10.0, "threshold", "X > 10"),))  # fmt: skip
    doc = _svg(chart)
    assert [n.attrs["y1"] for n in doc.iter("line")] == ["98.0"]
    assert next(doc.iter("polyline")).attrs["points"] == "50.0,57.1 414.0,6.0"
