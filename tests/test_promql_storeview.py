"""PromQL reads the store only through ``StoreView``: the evaluator gives the same answers
on a store of plain tuples that is not ``sidecar.store.Store``.

Samples are 15 s apart (``t = 0, 15s, 30s, ...``), written in promtool's series notation.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator

import pytest
from promql_support import load, values

from sidecar.core.model import LabelSet, is_stale, metric_name
from sidecar.rules.promql import LOOKBACK_MS, compile_expr
from sidecar.rules.unittest.series import parse_series
from sidecar.store import SCRAPE, SampleWindow, Store, StoreView

S = 15_000  # the sample interval, ms

DATA = {
    'requests_total{pod="a"}': "0+10x8",
    # A counter reset between 60s (40) and 75s (5).
    'requests_total{pod="b"}': "0+10x4 5+10x3",
    'queue_depth{pod="a"}': "1+1x8",
    # A staleness marker at 45s: the series ended there.
    'queue_depth{pod="b"}': "1 2 3 stale",
}


class _TupleSeries:
    """A series held in two tuples. Its fields are not named like ``Series``'s, so a
    reader that reached past ``window`` would fail here."""

    def __init__(self, labels: LabelSet, samples: list[tuple[int, float]]) -> None:
        self.labels = labels
        self._t = tuple(t for t, _ in samples)
        self._v = tuple(v for _, v in samples)

    @property
    def stale(self) -> bool:
        return bool(self._v) and is_stale(self._v[-1])

    def last(self) -> tuple[int, float] | None:
        return (self._t[-1], self._v[-1]) if self._t else None

    def window(self, lo: int, hi: int) -> SampleWindow:
        return self._t, self._v, bisect_left(self._t, lo), bisect_right(self._t, hi)


class _TupleStore:
    """The smallest ``StoreView``: a dict of series and a generation counter."""

    def __init__(self) -> None:
        self.generation = 0
        self._series: dict[LabelSet, _TupleSeries] = {}

    def add(self, desc: str, text: str, interval_ms: int = S) -> None:
        labels, points = parse_series(desc, text)
        samples = [(k * interval_ms, v) for k, v in enumerate(points) if v is not None]
        self._series[labels] = _TupleSeries(labels, samples)
        self.generation += 1

    def get(self, labels: LabelSet) -> _TupleSeries | None:
        return self._series.get(labels)

    def by_name(self, name: str) -> Iterator[_TupleSeries]:
        return (s for s in self._series.values() if metric_name(s.labels) == name)

    def __iter__(self) -> Iterator[_TupleSeries]:
        return iter(self._series.values())

    def latest(self, origin: str = SCRAPE) -> Iterator[tuple[LabelSet, float]]:
        for s in self._series.values():
            last = s.last()
            if last is not None and not s.stale:
                yield s.labels, last[1]


def _fake(data: dict[str, str] = DATA) -> StoreView:
    store = _TupleStore()
    for desc, text in data.items():
        store.add(desc, text)
    assert not isinstance(store, Store)
    return store


def test_instant_selector_takes_each_series_newest_sample() -> None:
    """An instant selector returns each series' newest sample at or before the time."""
    assert values("queue_depth", _fake(), 30_000) == {
        "__name__=queue_depth,pod=a": 3.0,
        "__name__=queue_depth,pod=b": 3.0,
    }


def test_instant_selector_honours_the_lookback_at_its_edge() -> None:
    """The last sample (120s) is seen exactly 5m later and gone a millisecond after."""
    store = _fake()
    edge = 8 * S + LOOKBACK_MS
    assert values('queue_depth{pod="a"}', store, edge) == {"__name__=queue_depth,pod=a": 9.0}
    assert values('queue_depth{pod="a"}', store, edge + 1) == {}


def test_staleness_marker_hides_a_series_from_instant_selection() -> None:
    """After its staleness marker a series is absent, though the marker is inside the lookback."""
    assert values("queue_depth", _fake(), 60_000) == {"__name__=queue_depth,pod=a": 5.0}


def test_timestamp_reads_the_selected_sample_time() -> None:
    """timestamp() gives the time of the sample the instant selector found, in seconds."""
    assert values("timestamp(queue_depth)", _fake(), 125_000) == {"pod=a": 120.0}


def test_rate_over_a_counter_window() -> None:
    """rate() over [60s, 120s]: an increase of 40 in 60s, and 35 across a counter reset."""
    assert values("rate(requests_total[1m])", _fake(), 8 * S) == {
        "pod=a": 40 / 60,
        "pod=b": 35 / 60,
    }


def test_range_functions_drop_the_staleness_marker() -> None:
    """Over [0s, 60s] the marker at 45s is not a sample: pod b averages 1, 2 and 3."""
    store = _fake()
    assert values("avg_over_time(queue_depth[1m])", store, 4 * S) == {"pod=a": 3.0, "pod=b": 2.0}
    assert values("count_over_time(queue_depth[1m])", store, 4 * S) == {"pod=a": 5.0, "pod=b": 3.0}


def test_a_new_series_is_selected_once_the_generation_moves() -> None:
    """A selector's cached matches are rebuilt when the store's generation changes."""
    store = _TupleStore()
    store.add('queue_depth{pod="a"}', "1")
    q = compile_expr("sum(queue_depth)")
    assert [s.value for s in q.evaluate(store, 0)] == [1.0]  # type: ignore[union-attr]
    store.add('queue_depth{pod="c"}', "10")
    assert [s.value for s in q.evaluate(store, 0)] == [11.0]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "expr",
    [
        "queue_depth",
        "requests_total",
        "rate(requests_total[1m])",
        "increase(requests_total[45s])",
        "resets(requests_total[2m])",
        "avg_over_time(queue_depth[1m])",
        "max_over_time(queue_depth[30s])",
        "deriv(queue_depth[1m])",
        "absent_over_time(queue_depth[20s])",
        "timestamp(requests_total)",
    ],
)
def test_the_fake_and_the_real_store_agree(expr: str) -> None:
    """Every query gives the same result on the fake as on ``Store`` at every sample time."""
    fake, real = _fake(), load(DATA, interval_ms=S)
    for t in range(0, 12 * S, S // 3):
        assert values(expr, fake, t) == values(expr, real, t), t
