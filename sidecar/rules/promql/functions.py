"""Functions over instant vectors and scalars: math, clamping, rounding, absent,
scalar/vector, time, sort. (Label rewriting is in ``labelfuncs``, dates in ``dates``.)

Every function that computes a new value drops the metric name, as Prometheus does;
``sort`` keeps it. The math is Go's ``math`` package's: see ``gomath`` and ``gotrig``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from math import isnan

from sidecar.core.model import LabelSet
from sidecar.rules.promql.eval import Ctx, Node
from sidecar.rules.promql.gohyper import go_acosh, go_asinh, go_atanh, go_cosh, go_sinh, go_tanh
from sidecar.rules.promql.gomath import go_exp, go_log, go_log2, go_log10
from sidecar.rules.promql.gotrig import go_acos, go_asin, go_atan, go_cos, go_sin, go_tan
from sidecar.rules.promql.values import (
    Elem,
    check_distinct,
    drop_name,
    go_ceil,
    go_div,
    go_floor,
    go_sqrt,
)

__all__ = [
    "MATH_FUNCS",
    "Absent",
    "Clamp",
    "MathFunc",
    "Pi",
    "Round",
    "ScalarOf",
    "Sort",
    "Time",
    "VectorOf",
]


def _sgn(x: float) -> float:
    if x < 0:
        return -1.0
    if x > 0:
        return 1.0
    return x


MATH_FUNCS: dict[str, Callable[[float], float]] = {
    "abs": math.fabs,
    "ceil": go_ceil,
    "floor": go_floor,
    "exp": go_exp,
    "sqrt": go_sqrt,
    "ln": go_log,
    "log2": go_log2,
    "log10": go_log10,
    "sgn": _sgn,
    "deg": lambda v: v * 180 / math.pi,
    "rad": lambda v: v * math.pi / 180,
    "sin": go_sin,
    "cos": go_cos,
    "tan": go_tan,
    "asin": go_asin,
    "acos": go_acos,
    "atan": go_atan,
    "sinh": go_sinh,
    "cosh": go_cosh,
    "tanh": go_tanh,
    "asinh": go_asinh,
    "acosh": go_acosh,
    "atanh": go_atanh,
}
"""Element-wise functions, each the Go ``math`` function Prometheus calls."""


class MathFunc(Node):
    """``f(v)`` for each element, metric name dropped."""

    distinct_wo_name = True

    def __init__(self, arg: Node, f: Callable[[float], float]) -> None:
        self.arg = arg
        self.f = f

    def ev(self, ctx: Ctx) -> list[Elem]:
        """Apply ``f`` element-wise."""
        f = self.f
        out = [(drop_name(ls), f(v)) for ls, v in self.arg.ev(ctx)]
        if not self.arg.distinct_wo_name:
            check_distinct(out)
        return out


def _go_max(x: float, y: float) -> float:
    if math.inf in (x, y):
        return math.inf
    if isnan(x) or isnan(y):
        return math.nan
    if x == 0 and x == y:
        return y if math.copysign(1.0, x) < 0 else x
    return x if x > y else y


def _go_min(x: float, y: float) -> float:
    if -math.inf in (x, y):
        return -math.inf
    if isnan(x) or isnan(y):
        return math.nan
    if x == 0 and x == y:
        return x if math.copysign(1.0, x) < 0 else y
    return x if x < y else y


class Clamp(Node):
    """``clamp``, ``clamp_min``, ``clamp_max`` (a missing bound is ``None``)."""

    distinct_wo_name = True

    def __init__(self, arg: Node, lo: Node | None, hi: Node | None) -> None:
        self.arg = arg
        self.lo = lo
        self.hi = hi

    def ev(self, ctx: Ctx) -> list[Elem]:
        """Bound each value with Go's ``math.Max``/``math.Min``."""
        vec = self.arg.ev(ctx)
        lo = self.lo.ev(ctx) if self.lo is not None else None
        hi = self.hi.ev(ctx) if self.hi is not None else None
        if lo is not None and hi is not None:
            if hi < lo:
                return []
            out = [(drop_name(ls), _go_max(lo, _go_min(hi, v))) for ls, v in vec]
        elif lo is not None:
            out = [(drop_name(ls), _go_max(lo, v)) for ls, v in vec]
        else:
            assert hi is not None
            out = [(drop_name(ls), _go_min(hi, v)) for ls, v in vec]
        if not self.arg.distinct_wo_name:
            check_distinct(out)
        return out


class Round(Node):
    """``round(v, to_nearest=1)``: ties round up, via the inverse of ``to_nearest``."""

    distinct_wo_name = True

    def __init__(self, arg: Node, to_nearest: Node | None) -> None:
        self.arg = arg
        self.to_nearest = to_nearest

    def ev(self, ctx: Ctx) -> list[Elem]:
        """``floor(v * (1/to_nearest) + 0.5) / (1/to_nearest)``."""
        near = self.to_nearest.ev(ctx) if self.to_nearest is not None else 1.0
        inv = go_div(1.0, near)
        out = [(drop_name(ls), go_div(go_floor(v * inv + 0.5), inv)) for ls, v in self.arg.ev(ctx)]
        if not self.arg.distinct_wo_name:
            check_distinct(out)
        return out


class Absent(Node):
    """``absent(v)``: one sample valued 1, labelled from the selector's equality matchers,
    when ``v`` is empty."""

    distinct_wo_name = True

    def __init__(self, arg: Node, labels: LabelSet) -> None:
        self.arg = arg
        self.labels = labels

    def ev(self, ctx: Ctx) -> list[Elem]:
        """Empty when ``v`` has elements."""
        return [] if self.arg.ev(ctx) else [(self.labels, 1.0)]


class ScalarOf(Node):
    """``scalar(v)``: the only element's value, else NaN."""

    kind = "scalar"

    def __init__(self, arg: Node) -> None:
        self.arg = arg

    def ev(self, ctx: Ctx) -> float:
        """The value of a one-element vector."""
        vec = self.arg.ev(ctx)
        return float(vec[0][1]) if len(vec) == 1 else math.nan


class VectorOf(Node):
    """``vector(s)``: the scalar as one element without labels."""

    distinct_wo_name = True

    def __init__(self, arg: Node) -> None:
        self.arg = arg

    def ev(self, ctx: Ctx) -> list[Elem]:
        """``[({}, s)]``."""
        return [((), self.arg.ev(ctx))]


class Time(Node):
    """``time()``: the evaluation time in seconds."""

    kind = "scalar"

    def ev(self, ctx: Ctx) -> float:
        """Seconds since the epoch."""
        return ctx.t / 1000


class Pi(Node):
    """``pi()``."""

    kind = "scalar"

    def ev(self, ctx: Ctx) -> float:
        """π."""
        return math.pi


class Sort(Node):
    """``sort``/``sort_desc``: order by value, NaN last; labels kept."""

    def __init__(self, arg: Node, desc: bool) -> None:
        self.arg = arg
        self.desc = desc
        self.distinct_wo_name = arg.distinct_wo_name

    def ev(self, ctx: Ctx) -> list[Elem]:
        """The input, sorted."""
        vec = self.arg.ev(ctx)
        nans = [e for e in vec if e[1] != e[1]]
        nums = [e for e in vec if e[1] == e[1]]
        nums.sort(key=lambda e: e[1], reverse=self.desc)
        return nums + nans
