"""Subqueries: ``expr[range:step]``, an instant expression evaluated at the steps of a range.

Prometheus 2.42 (``promql/engine.go``, ``SubqueryExpr``) evaluates the inner expression as
a range query whose steps are aligned to absolute time, not to the evaluation time:

- the subquery reads at ``ref = (@ time or evaluation time) - offset``;
- the steps are the multiples of ``step`` in ``[ref - range, ref]`` (both ends closed, as
  2.42's range windows are), so ``x[5m:1m]`` at 12:03:30 has steps 11:59 ... 12:03;
- ``step`` defaults to the global evaluation interval (``x[1h:]``), in promtool the test
  file's ``evaluation_interval``;
- at each step the inner expression is an ordinary instant evaluation at that step's
  time: selectors look back 5 minutes, staleness markers end a series, ``time()`` is the
  step, while ``@ start()``/``@ end()`` stay the query's time;
- each output series is the inner result's label set with the points of the steps where
  it had a value; the function over the subquery sees them as the window
  ``[ref - range, ref]`` (``rate`` extrapolates to those bounds).

One quirk of 2.42 is kept, since promtool and Prometheus show it. The engine turns each
``@`` into an offset from the first step of the evaluation around it, and fetches the
samples a selector needs for its ``@`` time alone. That is exact where the call holding an
``@`` range is evaluated once and repeated; but a call it evaluates at every step
(``predict_linear``, or one with an argument that varies, ``slides_with_steps``) inside
a subquery sees its window slide with the step, over only the samples of the unslid
window. So the evaluation context carries the first step (``Ctx.s0``) and, inside such a
sliding subquery, the last time its selectors may read (``Ctx.horizon``).

Nothing is kept between evaluations: a step's value can change when late samples come
in, and the steps move with the evaluation time.
"""

from __future__ import annotations

from array import array
from typing import Any

import promql_parser as pp

from sidecar.core.model import LabelSet
from sidecar.rules.promql.eval import Ctx, Node, ref_time
from sidecar.rules.promql.rangefuncs import Env, Kernel, range_seconds
from sidecar.rules.promql.values import check_distinct, drop_name

__all__ = [
    "AtFirstStep",
    "Subquery",
    "SubqueryAbsent",
    "SubqueryCall",
    "param_at_first_step",
    "slides_with_steps",
]

_AT_UNSAFE = frozenset(
    {"days_in_month", "day_of_month", "day_of_week", "day_of_year", "hour", "minute", "month",
     "year", "predict_linear", "time", "timestamp"}
)  # fmt: skip
"""2.42's ``AtModifierUnsafeFunctions``: never treated as the same at every step."""

_Points = tuple["array[int]", list[float]]


class Subquery:
    """The range of one subquery: where it reads, and its points per inner series."""

    __slots__ = ("at", "inner", "offset", "range_ms", "step_ms")

    def __init__(
        self, inner: Node, *, range_ms: int, step_ms: int, offset: int, at: int | None
    ) -> None:
        self.inner = inner
        self.range_ms = range_ms
        self.step_ms = step_ms
        """0 when the subquery names no step: the context's default step applies."""
        self.offset = offset
        self.at = at

    def evaluate(self, ctx: Ctx, shift: int = 0) -> tuple[int, int, dict[LabelSet, _Points]]:
        """``(start, end, points)``: the window's bounds and each inner series' points
        (``shift``: see ``SubqueryCall.moving``)."""
        end = ref_time(self.at, self.offset, ctx) + shift
        start = end - self.range_ms
        step = self.step_ms or ctx.step
        first = -(-start // step) * step  # the first multiple of the step at or after start
        # 2.42 evaluates a nested subquery once over all the steps of the one around it,
        # so its first step is found from that one's first step (see RangeCall.moving).
        base = end - shift if self.at is not None else end - shift - ctx.t + ctx.s0
        s0 = -(-(base - self.range_ms) // step) * step
        # 2.42 reads the samples a subquery needs from where its @ (or the query's time)
        # puts it: a sliding one's inner selectors see nothing newer than its unslid end.
        if shift:
            horizon: int | None = end - shift
        elif self.at is not None or ctx.horizon is None:
            horizon = None
        else:
            horizon = ctx.horizon - self.offset
        inner = self.inner  # an instant vector: the parser refuses a subquery of a scalar
        # A nested subquery is asked for the same steps at each step of the one around
        # it (2.42 evaluates it once): within one query the store does not change.
        memo = ctx.memo
        out: dict[LabelSet, _Points] = {}
        for t in range(first, end + 1, step):
            key = (self, t, s0, horizon)
            elems = memo.get(key)
            if elems is None:
                elems = memo[key] = inner.ev(ctx.at(t, s0, horizon))
            for labels, v in elems:
                pts = out.get(labels)
                if pts is None:
                    pts = out[labels] = (array("q"), [])
                pts[0].append(t)
                pts[1].append(v)
        return start, end, out


class SubqueryCall(Node):
    """A range function over a subquery, e.g. ``max_over_time(rate(x[1m])[1h:1m])``."""

    distinct_wo_name = True

    def __init__(
        self,
        kernel: Kernel,
        sub: Subquery,
        params: list[Node],
        *,
        keep_name: bool,
        moving: bool = False,
    ) -> None:
        self.kernel = kernel
        self.sub = sub
        self.range_s = range_seconds(sub.range_ms)
        self.params = params
        self.keep_name = keep_name
        self.moving = moving
        """As ``RangeCall.moving``, for ``predict_linear(x[1h:1m] @ t, ...)`` inside a
        subquery: the window slides with the step (2.42 computes those points too)."""

    def ev(self, ctx: Ctx) -> list[tuple[LabelSet, float]]:
        """Apply the kernel to each inner series' points."""
        params = [p.ev(ctx) for p in self.params]
        shift = ctx.t - ctx.s0 if self.moving else 0
        start, end, series = self.sub.evaluate(ctx, shift)
        env = Env(ctx.t, start, end, self.range_s, params)
        kernel = self.kernel
        keep = self.keep_name
        out = []
        for labels, (ts, vs) in series.items():
            v = kernel(ts, vs, 0, len(ts), env)
            if v is not None:
                out.append((labels if keep else drop_name(labels), v))
        if not keep:
            # The inner series differ, but perhaps only by name (at different steps).
            check_distinct(out)
        return out


class SubqueryAbsent(Node):
    """``absent_over_time`` of a subquery: ``{}`` valued 1 when the inner expression had
    no value at any step (2.42 gives it no labels, whatever the inner selector says)."""

    distinct_wo_name = True

    def __init__(self, sub: Subquery) -> None:
        self.sub = sub

    def ev(self, ctx: Ctx) -> list[tuple[LabelSet, float]]:
        """Empty if any step had a value."""
        _, _, series = self.sub.evaluate(ctx)
        return [] if series else [((), 1.0)]


class AtFirstStep(Node):
    """An aggregation's parameter as 2.42 evaluates it when the aggregated expression
    reads only ``@`` times: once, at the first step of the subquery around it
    (``topk(scalar(k), x @ t)[1h:1m]`` takes ``k`` at the first step for every step)."""

    def __init__(self, arg: Node) -> None:
        self.arg = arg
        self.kind = arg.kind
        self.distinct_wo_name = arg.distinct_wo_name

    def ev(self, ctx: Ctx) -> Any:
        """The parameter at the first step."""
        return self.arg.ev(ctx if ctx.t == ctx.s0 else ctx.at(ctx.s0, ctx.s0, ctx.horizon))


def param_at_first_step(e: Any) -> bool:
    """Whether 2.42 evaluates the aggregation ``e``'s parameter once per subquery: it
    wraps the aggregation as step-invariant by its expression alone, parameter unseen."""
    return _step_invariant(e.expr) and not _step_invariant(e.param)


def _step_invariant(e: Any) -> bool:
    """2.42's ``preprocessExprHelper``: whether the engine evaluates ``e`` once and repeats
    the value at every step (it reads only ``@`` times), rather than at each step."""
    if isinstance(e, (pp.ParenExpr, pp.UnaryExpr, pp.AggregateExpr)):
        return _step_invariant(e.expr)  # an aggregation's parameter is not looked at
    if isinstance(e, (pp.VectorSelector, pp.SubqueryExpr)):
        return e.at is not None
    if isinstance(e, pp.MatrixSelector):
        return e.vector_selector.at is not None
    if isinstance(e, pp.BinaryExpr):
        return _step_invariant(e.lhs) & _step_invariant(e.rhs)
    if isinstance(e, pp.Call):
        args = [_step_invariant(a) for a in e.args]
        return e.func.name not in _AT_UNSAFE and all(args)
    return True  # number and string literals


def slides_with_steps(name: str, args: list[Any], at: int | None) -> bool:
    """Whether a range function's ``@`` window slides with the steps of a subquery around
    it: 2.42 sets a selector's ``@`` as an offset from the first step, which is right only
    where the call is evaluated once; ``name(args)`` is evaluated at every step when it is
    ``predict_linear`` or has an argument that varies."""
    return at is not None and (name in _AT_UNSAFE or not all(map(_step_invariant, args)))
