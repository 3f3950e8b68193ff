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
    "AbsentOverTime",
    "Ctx",
    "Negate",
    "Node",
    "Number",
    "RangeCall",
    "StringLit",
    "Timestamp",
    "VectorSelect",
]


class Ctx:
    """One evaluation: the store, the evaluation time, the lookback delta."""

    __slots__ = ("lookback", "store", "t")

    def __init__(self, store: StoreView, t: int, lookback: int) -> None:
        self.store = store
        self.t = t
        self.lookback = lookback


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


def _ref(at: int | None, offset: int, t: int) -> int:
    return (t if at is None else at) - offset


class VectorSelect(Node):
    """An instant vector selector with its offset and ``@`` time."""

    def __init__(self, sel: Selector, offset: int, at: int | None) -> None:
        self.sel = sel
        self.offset = offset
        self.at = at
        self.distinct_wo_name = sel.fixed_name

    def ev(self, ctx: Ctx) -> list[Elem]:
        """The newest fresh, non-stale sample of each matched series."""
        return self.sel.instant(ctx.store, _ref(self.at, self.offset, ctx.t), ctx.lookback)


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
    ) -> None:
        self.kernel = kernel
        self.sel = sel
        self.range_ms = range_ms
        self.range_s = range_seconds(range_ms)
        self.offset = offset
        self.at = at
        self.params = params
        self.keep_name = keep_name
        # Dropping the name from series of one metric cannot make two of them equal.
        self._check = not sel.fixed_name and not keep_name
        self.distinct_wo_name = sel.fixed_name or not keep_name
        self._w = Window()

    def ev(self, ctx: Ctx) -> list[Elem]:
        """Apply the kernel to each matched series' window."""
        ref = _ref(self.at, self.offset, ctx.t)
        lo = ref - self.range_ms
        env = Env(ctx.t, lo, ref, self.range_s, [p.ev(ctx) for p in self.params])
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
        ref = _ref(self.at, self.offset, ctx.t)
        lo = ref - self.range_ms
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
        if isinstance(arg, VectorSelect):
            ref = _ref(arg.at, arg.offset, ctx.t)
            out = [
                (drop_name(ls), t / 1000)
                for ls, t in arg.sel.instant_with_time(ctx.store, ref, ctx.lookback)
            ]
        else:
            now = ctx.t / 1000
            out = [(drop_name(ls), now) for ls, _ in arg.ev(ctx)]
        if not arg.distinct_wo_name:
            check_distinct(out)
        return out


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
