"""Evaluator nodes: the query tree compiled once into objects with an ``ev(ctx)`` method.

A node's ``kind`` is ``"scalar"`` (``ev`` returns a float), ``"vector"`` (a list of
``(labels, value)``) or ``"string"``. Nodes keep what can be kept between evaluations:
compiled matchers, the matched series, label sets with the metric name dropped.

``distinct_wo_name`` says whether a vector node's elements stay distinct when
``__name__`` is dropped; a node that drops the name runs Prometheus's "same labelset"
check only when its input does not promise that.
"""

from __future__ import annotations

from typing import Any

from sidecar.core.model import LabelSet
from sidecar.rules.promql.rangefuncs import Env, Kernel, range_seconds
from sidecar.rules.promql.selectors import Selector, Window, fill_window
from sidecar.rules.promql.values import Elem, check_distinct, drop_name
from sidecar.store import StoreView

__all__ = [
    "AT_QUERY_TIME",
    "SUBQUERY_STEP_MS",
    "AbsentOverTime",
    "Ctx",
    "Negate",
    "Node",
    "Number",
    "RangeCall",
    "StringLit",
    "Timestamp",
    "VectorSelect",
    "ref_time",
]


SUBQUERY_STEP_MS = 60_000
"""A subquery's step when it names none (``x[1h:]``): Prometheus's default global
``evaluation_interval``, and promtool's default ``evaluation_interval``."""

AT_QUERY_TIME = -(2**63)
"""The ``at`` of ``@ start()`` and ``@ end()``: the query's time, even inside a subquery
(negative ``@`` times are refused, so no real ``@`` has this value)."""


class Ctx:
    """One evaluation: the store, the evaluation time, the lookback delta; the query's
    own time (``t`` moves inside a subquery, ``start`` does not), the default step of a
    subquery, and ``s0``, the first step of the innermost subquery evaluating (the query's
    time outside any)."""

    __slots__ = ("horizon", "lookback", "memo", "s0", "start", "step", "store", "t")

    def __init__(
        self, store: StoreView, t: int, lookback: int, step: int = SUBQUERY_STEP_MS
    ) -> None:
        self.store = store
        self.t = t
        self.lookback = lookback
        self.start = t
        self.step = step
        self.s0 = t
        self.horizon: int | None = None
        """Inside a sliding subquery (see ``subquery``), the last step whose samples the
        selectors without ``@`` may read (minus their offset); None: no limit."""
        self.memo: dict[Any, Any] = {}
        """Results kept for the length of one query, shared by its subqueries' steps."""

    def at(self, t: int, s0: int, horizon: int | None) -> Ctx:
        """The same query evaluated at ``t``, a step of a subquery whose first step is ``s0``."""
        sub = Ctx(self.store, t, self.lookback, self.step)
        sub.start = self.start
        sub.s0 = s0
        sub.horizon = horizon
        sub.memo = self.memo
        return sub


class Node:
    """Base of the compiled nodes."""

    kind = "vector"
    distinct_wo_name = False

    def ev(self, ctx: Ctx) -> Any:
        """Evaluate at ``ctx.t``."""
        raise NotImplementedError


class Number(Node):
    """A number literal."""

    kind = "scalar"

    def __init__(self, value: float) -> None:
        self.value = value

    def ev(self, ctx: Ctx) -> float:
        """The literal."""
        return self.value


class StringLit(Node):
    """A string literal (only as a function or aggregation argument)."""

    kind = "string"

    def __init__(self, value: str) -> None:
        self.value = value

    def ev(self, ctx: Ctx) -> str:
        """The literal."""
        return self.value


def ref_time(at: int | None, offset: int, ctx: Ctx) -> int:
    """The time a selector or subquery reads at: its ``@`` time (or the evaluation time)
    minus its offset."""
    if at is None:
        return ctx.t - offset
    return (ctx.start if at == AT_QUERY_TIME else at) - offset


def _newest(at: int | None, offset: int, ctx: Ctx) -> int | None:
    """The newest sample a selector may read beyond its own window's end (None: any)."""
    if ctx.horizon is None or at is not None:
        return None
    return ctx.horizon - offset


class VectorSelect(Node):
    """An instant vector selector with its offset and ``@`` time."""

    def __init__(self, sel: Selector, offset: int, at: int | None) -> None:
        self.sel = sel
        self.offset = offset
        self.at = at
        self.distinct_wo_name = sel.fixed_name

    def ev(self, ctx: Ctx) -> list[Elem]:
        """The newest fresh, non-stale sample of each matched series."""
        ref = ref_time(self.at, self.offset, ctx)
        newest = _newest(self.at, self.offset, ctx)
        return self.sel.instant(ctx.store, ref, ctx.lookback, newest)


class RangeCall(Node):
    """A function over a range selector, e.g. ``rate(x[5m])``; one output per series."""

    distinct_wo_name = True

    def __init__(
        self,
        kernel: Kernel,
        sel: Selector,
        *,
        range_ms: int,
        offset: int,
        at: int | None,
        params: list[Node],
        keep_name: bool,
        moving: bool = False,
    ) -> None:
        self.kernel = kernel
        self.sel = sel
        self.range_ms = range_ms
        self.range_s = range_seconds(range_ms)
        self.offset = offset
        self.at = at
        self.params = params
        self.keep_name = keep_name
        self.moving = moving
        """2.42's quirk for ``@`` in a call it re-evaluates at every step (``predict_linear``,
        or a parameter that varies): inside a subquery the window slides with the step
        away from the ``@`` time, over only the samples the ``@`` window holds."""
        # Dropping the name from series of one metric cannot make two of them equal.
        self._check = not sel.fixed_name and not keep_name
        self.distinct_wo_name = sel.fixed_name or not keep_name
        self._w = Window()

    def ev(self, ctx: Ctx) -> list[Elem]:
        """Apply the kernel to each matched series' window."""
        ref = ref_time(self.at, self.offset, ctx)
        lo = ref - self.range_ms
        env = Env(ctx.t, lo, ref, self.range_s, [p.ev(ctx) for p in self.params])
        if self.moving and ctx.t != ctx.s0:
            env.start += ctx.t - ctx.s0
            env.end += ctx.t - ctx.s0
            lo = env.start
        newest = _newest(self.at, self.offset, ctx)
        if newest is not None:
            ref = min(ref, newest)
        if lo > ref:
            return []
        store = ctx.store
        sel = self.sel
        series = sel.series(store)
        metas = sel.metas(store)
        kernel = self.kernel
        w = self._w
        keep = self.keep_name
        out: list[Elem] = []
        track = sel.track_resets
        for s, m in zip(series, metas, strict=True):
            if not fill_window(s, m, lo, ref, w, track_resets=track):
                continue
            env.resets = w.resets
            v = kernel(w.ts, w.vs, w.i, w.j, env)
            if v is not None:
                out.append((s.labels if keep else m.dropped, v))
        if self._check:
            check_distinct(out)
        return out


class AbsentOverTime(Node):
    """``absent_over_time(x[r])``: one sample valued 1 when no series has a sample in range."""

    distinct_wo_name = True

    def __init__(
        self, sel: Selector, range_ms: int, offset: int, at: int | None, labels: LabelSet
    ) -> None:
        self.sel = sel
        self.range_ms = range_ms
        self.offset = offset
        self.at = at
        self.labels = labels
        self._w = Window()

    def ev(self, ctx: Ctx) -> list[Elem]:
        """Empty if any matched series has a sample in the window."""
        ref = ref_time(self.at, self.offset, ctx)
        lo = ref - self.range_ms
        newest = _newest(self.at, self.offset, ctx)
        if newest is not None:
            ref = min(ref, newest)
        store = ctx.store
        for s, m in zip(self.sel.series(store), self.sel.metas(store), strict=True):
            if fill_window(s, m, lo, ref, self._w, track_resets=False):
                return []
        return [(self.labels, 1.0)]


class Timestamp(Node):
    """``timestamp(v)``: a selector's sample times, or the evaluation time for anything else."""

    distinct_wo_name = True

    def __init__(self, arg: Node) -> None:
        self.arg = arg

    def ev(self, ctx: Ctx) -> list[Elem]:
        """Seconds since the epoch, metric name dropped."""
        arg = self.arg
        if isinstance(arg, VectorSelect) and arg.at is not None:
            out = [(drop_name(ls), t / 1000) for ls, t in _at_times(arg, ctx)]
        elif isinstance(arg, VectorSelect):
            ref = ref_time(arg.at, arg.offset, ctx)
            out = [
                (drop_name(ls), t / 1000)
                for ls, t in arg.sel.instant_with_time(
                    ctx.store, ref, ctx.lookback, _newest(arg.at, arg.offset, ctx)
                )
            ]
        else:
            now = ctx.t / 1000
            out = [(drop_name(ls), now) for ls, _ in arg.ev(ctx)]
        if not arg.distinct_wo_name:
            check_distinct(out)
        return out


def _at_times(arg: VectorSelect, ctx: Ctx) -> list[tuple[LabelSet, int]]:
    """``timestamp(x offset o @ a)`` as 2.42 computes it: two windows that disagree.

    The engine fetches each selector's samples for the window it reads, ``[a - o -
    lookback, a - o]``, and the storage trims every series to that window (the selector's
    hints, ``getTimeRangesForSelector``; the querier's own, query-wide range is the union
    of them all, so it never trims more). But for ``timestamp()`` of an ``@`` selector
    the engine replaces the offset by ``t - a`` (``t`` the evaluation or step time), so
    the lookup is the newest sample at or before ``a``, at most ``lookback`` old. The
    answer is the newest sample in both windows: ``[a - lookback - min(o, 0), a -
    max(o, 0)]``; none when ``|o|`` exceeds the lookback.

    Elsewhere the trimming changes nothing: every other read of a selector stays inside
    the window its hints name (a range selector's ``[ref - range, ref]``, an instant
    one's lookback window, each step of a subquery around it), and the one place 2.42
    reads past it, an ``@`` range sliding with a subquery's steps, is ``Ctx.horizon``.
    """
    at = ctx.start if arg.at == AT_QUERY_TIME else arg.at
    assert at is not None  # the caller's check: only an @ selector comes here
    hi = at - max(arg.offset, 0)
    lo = at - ctx.lookback - min(arg.offset, 0)
    if lo > hi:
        return []
    return arg.sel.instant_with_time(ctx.store, hi, hi - lo)


class Negate(Node):
    """Unary minus: negates, and drops the metric name from a vector."""

    def __init__(self, arg: Node) -> None:
        self.arg = arg
        self.kind = arg.kind
        self.distinct_wo_name = True

    def ev(self, ctx: Ctx) -> Any:
        """``-arg``."""
        v = self.arg.ev(ctx)
        if self.kind == "scalar":
            return -v
        out = [(drop_name(ls), -x) for ls, x in v]
        if not self.arg.distinct_wo_name:
            check_distinct(out)
        return out
