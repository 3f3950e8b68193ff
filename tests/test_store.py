"""The series store: bounded rings, staleness per origin, the series cap."""

from __future__ import annotations

import pytest

from sidecar.core.model import STALE_NAN, is_stale, labelset
from sidecar.store import MAX_T, MIN_T, SCRAPE, Store

A = labelset({"__name__": "a"})
B = labelset({"__name__": "b", "x": "1"})
C = labelset({"__name__": "c"})


def test_ingest_appends_and_latest_returns_newest() -> None:
    """Each ingest appends one sample per series and latest() shows the newest value."""
    st = Store(retention_ms=60_000, max_series=10)
    st.ingest(1000, {A: 1.0, B: 2.0})
    st.ingest(2000, {A: 3.0, B: 4.0})
    assert dict(st.latest()) == {A: 3.0, B: 4.0}
    s = st.get(A)
    assert s is not None
    assert list(s.ts[s.head :]) == [1000, 2000]
    assert list(s.vs[s.head :]) == [1.0, 3.0]


def test_vanished_series_gets_stale_marker() -> None:
    """A series missing from its origin's next ingest is marked stale and leaves latest()."""
    st = Store(retention_ms=60_000, max_series=10)
    st.ingest(1000, {A: 1.0, B: 2.0})
    result = st.ingest(2000, {A: 1.5})
    assert result.staled == 1
    s = st.get(B)
    assert s is not None
    assert s.stale
    assert is_stale(s.vs[-1])
    assert dict(st.latest()) == {A: 1.5}


def test_staleness_is_per_origin() -> None:
    """A rule's output is not staled by a scrape that lacks it, only by its own rule."""
    st = Store(retention_ms=60_000, max_series=10)
    st.ingest(1000, {A: 1.0})
    st.ingest(1000, {B: 5.0}, origin="rule:g/0")
    st.ingest(2000, {A: 2.0})
    b = st.get(B)
    assert b is not None
    assert not b.stale
    st.ingest(2000, {}, origin="rule:g/0")
    assert b.stale
    assert dict(st.latest(origin="rule:g/0")) == {}


def test_vanished_series_is_staled_when_another_origins_series_is_written() -> None:
    """An ingest holding as many series as the origin has, one of them another origin's,
    still stales the origin's series that vanished."""
    st = Store(retention_ms=60_000, max_series=10)
    st.ingest(1000, {B: 5.0}, origin="rule:g/0")
    st.ingest(1000, {A: 1.0, C: 2.0})
    result = st.ingest(2000, {A: 1.5, B: 6.0})
    assert result.staled == 1
    c = st.get(C)
    assert c is not None
    assert c.stale
    assert dict(st.latest()) == {A: 1.5}
    assert dict(st.latest(origin="rule:g/0")) == {B: 6.0}


def test_mark_stale_ends_every_live_series_of_the_origin() -> None:
    """A failed scrape ends every scrape series at once."""
    st = Store(retention_ms=60_000, max_series=10)
    st.ingest(1000, {A: 1.0, B: 2.0})
    assert st.mark_stale(2000) == 2
    assert st.mark_stale(3000) == 0
    assert list(st.latest()) == []


def test_retention_drops_old_samples_and_empty_series() -> None:
    """Samples older than retention go, and a series with none left is removed."""
    st = Store(retention_ms=10_000, max_series=10)
    st.ingest(0, {A: 1.0, B: 1.0})
    gen = st.generation
    for t in range(1000, 12_001, 1000):
        st.ingest(t, {A: float(t)})
    a = st.get(A)
    assert a is not None
    assert a.ts[a.head] == 2000
    assert len(a) == 11
    assert st.get(B) is None
    assert st.generation > gen


def test_series_cap_refuses_new_series() -> None:
    """Past max_series, new series are refused and counted; existing ones keep updating."""
    st = Store(retention_ms=60_000, max_series=1)
    r = st.ingest(1000, {A: 1.0, B: 2.0})
    assert (r.written, r.refused) == (1, 1)
    assert len(st) == 1


def test_out_of_order_sample_is_ignored() -> None:
    """A sample not newer than the last one is dropped, as Prometheus drops it (an
    ingest before the origin's last one is a clock step: tests/test_hostile.py, finding 10)."""
    st = Store(retention_ms=60_000, max_series=10)
    st.ingest(2000, {A: 1.0})
    st.ingest(2000, {A: 9.0})
    assert dict(st.latest()) == {A: 1.0}


def test_window_is_inclusive_on_both_ends() -> None:
    """window(lo, hi) covers samples with lo <= t <= hi, as Prometheus 2.x range selection."""
    st = Store(retention_ms=60_000, max_series=10)
    for t in (1000, 2000, 3000, 4000):
        st.ingest(t, {A: float(t)})
    s = st.get(A)
    assert s is not None
    ts, vs, i, j = s.window(2000, 3000)
    assert (list(ts[i:j]), list(vs[i:j])) == ([2000, 3000], [2000.0, 3000.0])


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (MIN_T, MAX_T, [3000, 4000, 5000]),
        (0, 2999, []),
        (3001, 3999, []),
        (5001, 9000, []),
        (3500, 4000, [4000]),
        (4000, 10_000, [4000, 5000]),
        (4000, 3000, []),
    ],
)
def test_window_reads_only_retained_samples(lo: int, hi: int, expected: list[int]) -> None:
    """A window never reaches the samples retention dropped, and may be empty at either end."""
    st = Store(retention_ms=2000, max_series=10)
    for t in (1000, 2000, 3000, 4000, 5000):
        st.ingest(t, {A: float(t)})
    s = st.get(A)
    assert s is not None
    ts, _, i, j = s.window(lo, hi)
    assert i <= j
    assert list(ts[i:j]) == expected


def test_long_runs_compact_the_arrays() -> None:
    """The ring does not keep dropped samples forever: arrays are compacted."""
    st = Store(retention_ms=1000, max_series=10)
    for t in range(0, 2_000_000, 1000):
        st.ingest(t, {A: 1.0})
    s = st.get(A)
    assert s is not None
    assert len(s.ts) < 600
    assert len(s) == 2


def test_stale_nan_is_distinct_from_nan() -> None:
    """Only Prometheus's exact staleness bit pattern counts as stale."""
    assert is_stale(STALE_NAN)
    assert not is_stale(float("nan"))
    assert not is_stale(1.0)


def test_scrape_is_the_default_origin() -> None:
    """ingest() without an origin writes scrape series, which latest() exports."""
    st = Store(retention_ms=60_000, max_series=10)
    st.ingest(1000, {A: 1.0})
    a = st.get(A)
    assert a is not None
    assert a.origin == SCRAPE
