"""Series selection: label matchers, the matched-series cache, instant and range windows.

A selector keeps the series it matched and rebuilds that list only when the store's
``generation`` moves (a series was added or removed), so a rule evaluated every few
seconds costs one dictionary check per selector, not a scan of the store. Matched series
are kept in the store's order, which is the order they were created in, as Prometheus
orders them by series reference (it matters for the last bits of ``sum``/``stdvar`` and
for ``topk`` ties).

Series are read through the store's ``StoreView``/``SeriesView`` seam: each read is one
``window(lo, hi)`` call that returns the store's sequences and the index bounds of the
window, so nothing is copied on the way to a range function.

Regular expressions are RE2 (the google-re2 binding), the engine Go's ``regexp`` follows,
anchored at both ends as Prometheus anchors them.

Windows follow Prometheus 2.42: an instant selector takes the newest sample at or before
``t - offset`` if it is at most ``lookback`` old (a sample exactly ``lookback`` old is
still seen) and is not a staleness marker; a range selector takes the samples in
``[t - offset - range, t - offset]`` (both ends closed), staleness markers dropped.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from math import isnan
from operator import lt
from typing import Any

from sidecar.core.config_relabel import RegexError, compile_anchored
from sidecar.core.model import LabelSet, is_stale
from sidecar.rules.promql.values import NAME, Elem, PromQLError, drop_name
from sidecar.store import MAX_T, MIN_T, SeriesView, StoreView

__all__ = ["Matcher", "Selector", "Window", "compile_regex"]


def compile_regex(pattern: str) -> Any:
    """Compile ``pattern`` anchored as Prometheus anchors it (``^(?:pattern)$``)."""
    try:
        return compile_anchored(pattern)
    except RegexError as exc:
        raise PromQLError(f"invalid regular expression {pattern!r}: {exc}") from exc


class Matcher:
    """One label matcher: ``name op "value"`` with op one of ``=``, ``!=``, ``=~``, ``!~``."""

    __slots__ = ("match", "name", "op", "value")

    def __init__(self, name: str, op: str, value: str) -> None:
        self.name = name
        self.op = op
        self.value = value
        self.match: Callable[[str], bool]
        if op == "=":
            self.match = value.__eq__
        elif op == "!=":
            self.match = value.__ne__
        else:
            rx = compile_regex(value)
            if op == "=~":
                self.match = lambda s: rx.fullmatch(s) is not None
            else:
                self.match = lambda s: rx.fullmatch(s) is None

    def __repr__(self) -> str:
        return f"{self.name}{self.op}{self.value!r}"


class _Meta:
    """What a selector remembers of one series between evaluations: where staleness
    markers and counter resets are, found by scanning each new sample once, so that a
    window can be checked for them by bisection instead of by a pass over its samples."""

    __slots__ = ("dropped", "prev", "reset_ts", "scanned", "stale_ts")

    def __init__(self, labels: LabelSet) -> None:
        self.dropped = drop_name(labels)
        self.scanned = MIN_T
        self.prev: float | None = None
        self.stale_ts: array[int] = array("q")
        self.reset_ts: array[int] = array("q")
        """Times of samples lower than the non-stale sample before them (kept only for
        selectors of counter functions: a gauge would add one for every dip)."""


class Window:
    """The samples of one series inside a range: ``ts[i:j]`` and ``vs[i:j]``, and whether
    a value in it is lower than the one before (``None``: not known, look)."""

    __slots__ = ("i", "j", "resets", "ts", "vs")

    def __init__(self) -> None:
        self.ts: Any = ()
        self.vs: Any = ()
        self.i = 0
        self.j = 0
        self.resets: bool | None = None


class Selector:
    """The series matched by a set of matchers, cached per store generation."""

    __slots__ = (
        "_metas",
        "_series",
        "_store",
        "_store_gen",
        "matchers",
        "name",
        "rest",
        "track_resets",
    )

    def __init__(self, matchers: list[Matcher], *, track_resets: bool = False) -> None:
        self.matchers = matchers
        self.track_resets = track_resets
        """Index counter resets between evaluations (for rate, increase, resets)."""
        self.name: str | None = None
        rest = []
        for m in matchers:
            if self.name is None and m.name == NAME and m.op == "=":
                self.name = m.value
            else:
                rest.append(m)
        self.rest = rest
        self._store: StoreView | None = None
        self._store_gen = -1
        self._series: list[SeriesView] = []
        self._metas: list[_Meta] = []

    @property
    def fixed_name(self) -> bool:
        """True when every matched series has the same ``__name__``."""
        return self.name is not None

    def series(self, store: StoreView) -> list[SeriesView]:
        """The matched series, oldest first."""
        if store is not self._store or store.generation != self._store_gen:
            self._rebuild(store)
        return self._series

    def metas(self, store: StoreView) -> list[_Meta]:
        """Per-series bookkeeping, parallel to ``series(store)``."""
        if store is not self._store or store.generation != self._store_gen:
            self._rebuild(store)
        return self._metas

    def _rebuild(self, store: StoreView) -> None:
        candidates = store.by_name(self.name) if self.name is not None else iter(store)
        rest = self.rest
        found = []
        for s in candidates:
            if rest:
                d = dict(s.labels)
                if not all(m.match(d.get(m.name, "")) for m in rest):
                    continue
            found.append(s)
        old = dict(zip(self._series, self._metas, strict=True)) if self._store is store else {}
        self._series = found
        self._metas = [old.get(s) or _Meta(s.labels) for s in found]
        self._store = store
        self._store_gen = store.generation

    def instant(
        self, store: StoreView, ref: int, lookback: int, newest: int | None = None
    ) -> list[Elem]:
        """Each matched series' newest sample at or before ``ref``, if fresh and not stale
        (``newest``: no sample after it is seen, see ``subquery``)."""
        lo = ref - lookback
        hi = ref if newest is None else min(ref, newest)
        out = []
        for s in self.series(store):
            # Open below: only the window's end is wanted, and a store need not look for
            # its start; the lookback is one comparison on the sample found.
            ts, vs, i, j = s.window(MIN_T, hi)
            if i == j or ts[j - 1] < lo:
                continue
            v = vs[j - 1]
            if isnan(v) and is_stale(v):
                continue
            out.append((s.labels, v))
        return out

    def instant_with_time(
        self, store: StoreView, ref: int, lookback: int, newest: int | None = None
    ) -> list[tuple[LabelSet, int]]:
        """Like ``instant`` but each element carries its sample's timestamp (``timestamp()``)."""
        lo = ref - lookback
        hi = ref if newest is None else min(ref, newest)
        out = []
        for s in self.series(store):
            ts, vs, i, j = s.window(MIN_T, hi)
            if i == j or ts[j - 1] < lo:
                continue
            v = vs[j - 1]
            if isnan(v) and is_stale(v):
                continue
            out.append((s.labels, ts[j - 1]))
        return out


def fill_window(
    s: SeriesView, meta: _Meta, lo: int, hi: int, w: Window, *, track_resets: bool
) -> bool:
    """Point ``w`` at the non-stale samples of ``s`` in ``[lo, hi]``; False if there are none.

    One window read per series and evaluation: it also reaches back to the first sample
    not scanned yet, so that ``meta`` learns the staleness markers (and, if asked, the
    counter resets) up to ``hi`` on the way.
    """
    scanned = meta.scanned
    if scanned < lo:
        # Samples before the window are not scanned yet (the first evaluation, or a gap).
        ts, vs, k, j = s.window(scanned + 1, hi)
        if k == j:
            return False
        _scan(meta, ts, vs, k, j, track_resets=track_resets)
        _trim(s, meta)
        i = k if ts[k] >= lo else bisect_left(ts, lo, k, j)
        if i == j:
            return False
    else:
        ts, vs, i, j = s.window(lo, hi)
        if i == j:
            return False
        if ts[j - 1] > scanned:
            _scan(meta, ts, vs, bisect_right(ts, scanned, i, j), j, track_resets=track_resets)
            _trim(s, meta)
    stale = meta.stale_ts
    if stale and bisect_right(stale, hi) > bisect_left(stale, lo):
        # Rare: a staleness marker inside the window. Copy the window without it.
        kt = []
        kv = []
        for idx in range(i, j):
            v = vs[idx]
            if isnan(v) and is_stale(v):
                continue
            kt.append(ts[idx])
            kv.append(v)
        if not kt:
            return False
        w.ts, w.vs, w.i, w.j, w.resets = kt, kv, 0, len(kt), None
        return True
    if track_resets:
        resets = meta.reset_ts
        # A reset at the window's first sample compares with one outside it: not counted.
        w.resets = bool(resets) and bisect_right(resets, ts[j - 1]) > bisect_right(resets, ts[i])
    else:
        w.resets = None
    w.ts, w.vs, w.i, w.j = ts, vs, i, j
    return True


def _scan(
    meta: _Meta, ts: Sequence[int], vs: Sequence[float], k: int, n: int, *, track_resets: bool
) -> None:
    """Record the staleness markers (and, if asked, the counter resets) of the samples
    ``[k, n)``, the first ones newer than ``meta.scanned``."""
    chunk = vs[k:n]
    prev = meta.prev
    if not isnan(sum(chunk)):
        # No NaN, so no staleness marker: only look for drops, at C speed first.
        drop = track_resets and (
            (prev is not None and chunk[0] < prev) or any(map(lt, chunk[1:], chunk[:-1]))
        )
        if drop:
            for idx in range(k, n):
                v = vs[idx]
                if prev is not None and v < prev:
                    meta.reset_ts.append(ts[idx])
                prev = v
        meta.prev = chunk[-1]
    else:
        for idx in range(k, n):
            v = vs[idx]
            if isnan(v) and is_stale(v):
                meta.stale_ts.append(ts[idx])
                continue
            if track_resets and prev is not None and v < prev:
                meta.reset_ts.append(ts[idx])
            prev = v
        meta.prev = prev
    meta.scanned = ts[n - 1]


def _trim(s: SeriesView, meta: _Meta) -> None:
    """Forget the marks older than the oldest sample ``s`` keeps: no window reaches them."""
    if not (meta.stale_ts or meta.reset_ts):
        return
    ts, _, head, _ = s.window(MIN_T, MAX_T)
    first = ts[head]
    for marks in (meta.stale_ts, meta.reset_ts):
        if marks and marks[0] < first:
            del marks[: bisect_left(marks, first)]
