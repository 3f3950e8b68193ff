"""From PromQL text to evaluator nodes: parse (``parse``), check the subset, build.

promql-parser speaks a newer PromQL than Prometheus 2.42. What ``parse`` cannot refuse
from the text alone, everything in the tree that 2.42 rejects (``limitk``,
``mad_over_time``, quoted UTF-8 names, ``or`` between matchers...) and everything 2.42
has that the sidecar does not evaluate (native-histogram functions), is collected while
walking the tree, so one error names every such construct.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import promql_parser as pp

from sidecar.core.model import LabelSet
from sidecar.rules.promql import functions as fn
from sidecar.rules.promql.aggregate import AGGREGATORS, Aggregate
from sidecar.rules.promql.binary import (
    ARITHMETIC,
    COMPARISONS,
    SET_OPS,
    Matching,
    ScalarBinary,
    SetBinary,
    VectorBinary,
    VectorScalarBinary,
)
from sidecar.rules.promql.dates import DATE_FUNCS, DateFunc
from sidecar.rules.promql.eval import (
    AT_QUERY_TIME,
    AbsentOverTime,
    Negate,
    Node,
    Number,
    RangeCall,
    StringLit,
    Timestamp,
    VectorSelect,
)
from sidecar.rules.promql.histograms import HistogramQuantile, NativeOnly
from sidecar.rules.promql.labelfuncs import LabelJoin, LabelReplace
from sidecar.rules.promql.parse import parse_text, quoted_names
from sidecar.rules.promql.rangefuncs import RANGE_KERNELS
from sidecar.rules.promql.selectors import Matcher, Selector
from sidecar.rules.promql.subquery import (
    AtFirstStep,
    Subquery,
    SubqueryAbsent,
    SubqueryCall,
    param_at_first_step,
    slides_with_steps,
)
from sidecar.rules.promql.values import NAME, PromQLError, valid_label_name

__all__ = ["Compiled", "compile_text"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_US = timedelta(microseconds=1)

_HISTOGRAM_FUNCS = frozenset(
    {"histogram_count", "histogram_sum", "histogram_fraction", "histogram_quantile"}
)
_INSTANT_FUNCS = frozenset(
    {*fn.MATH_FUNCS, *DATE_FUNCS, *_HISTOGRAM_FUNCS, "clamp", "clamp_min", "clamp_max", "round",
     "timestamp", "label_replace", "label_join", "absent", "scalar", "vector", "time", "pi",
     "sort", "sort_desc"}
)  # fmt: skip
_COUNTER_FUNCS = frozenset({"rate", "increase", "resets"})


class Compiled:
    """A compiled tree and what the store must keep for it."""

    def __init__(self, root: Node, max_range_ms: int, metric_names: frozenset[str]) -> None:
        self.root = root
        self.max_range_ms = max_range_ms
        self.metric_names = metric_names


def _ms(d: timedelta | None) -> int:
    return 0 if d is None else d // _MS


def _match_op(op: Any) -> str:
    # promql-parser's enum values are not hashable: compare one by one.
    if op == pp.MatchOp.Equal:
        return "="
    if op == pp.MatchOp.NotEqual:
        return "!="
    return "=~" if op == pp.MatchOp.Re else "!~"


def _cardinality(card: Any) -> str:
    if card == pp.VectorMatchCardinality.ManyToOne:
        return "many-to-one"
    if card == pp.VectorMatchCardinality.OneToMany:
        return "one-to-many"
    if card == pp.VectorMatchCardinality.ManyToMany:
        return "many-to-many"
    return "one-to-one"


class _Compiler:
    def __init__(self, text: str) -> None:
        self.text = text
        self.unsupported: list[str] = []
        self.max_range_ms = 0
        self.metric_names: set[str] = set()
        self.negative_at: dict[int, int] = {}

    def bad(self, construct: str) -> Node:
        if construct not in self.unsupported:
            self.unsupported.append(construct)
        return Number(0.0)

    # -- selectors -------------------------------------------------------------------
    def selector(self, vs: Any, *, track_resets: bool = False) -> Selector | None:
        matchers = []
        if vs.matchers.or_matchers:
            self.bad("`or` between label matchers (Prometheus 3 syntax)")
            return None
        if vs.name is not None:
            matchers.append(Matcher(NAME, "=", vs.name))
            self.metric_names.add(vs.name)
        for m in vs.matchers.matchers:
            if not valid_label_name(m.name):
                self.bad(f"quoted label name {m.name!r} (Prometheus 3 syntax)")
                return None
            if m.name == NAME and vs.name is None and NAME not in self.text:
                self.bad(f'quoted metric name {{"{m.value}"}} (Prometheus 3 syntax)')
                return None
            matchers.append(Matcher(m.name, _match_op(m.op), m.value))
            if m.name == NAME and matchers[-1].op == "=":
                self.metric_names.add(m.value)
        return Selector(matchers, track_resets=track_resets)

    def at_ms(self, vs: Any) -> int | None:
        at = vs.at
        if at is None:
            return None
        if at.type != pp.AtModifierType.At:
            # start() and end() are the query's time, inside a subquery too.
            return AT_QUERY_TIME
        us: int = (at.at - _EPOCH) // _US
        ms = (us + 500) // 1000  # round half away from zero, as Prometheus parses @ seconds
        return self.negative_at.get(ms, ms)

    def vector_select(self, vs: Any) -> Node:
        sel = self.selector(vs)
        if sel is None:
            return Number(0.0)
        offset = _ms(vs.offset)
        self.max_range_ms = max(self.max_range_ms, offset)
        return VectorSelect(sel, offset, self.at_ms(vs))

    # -- tree ------------------------------------------------------------------------
    def visit(self, e: Any) -> Node:
        if isinstance(e, pp.NumberLiteral):
            return Number(float(e.val))
        if isinstance(e, pp.StringLiteral):
            return StringLit(e.val)
        if isinstance(e, pp.ParenExpr):
            return self.visit(e.expr)
        if isinstance(e, pp.UnaryExpr):
            return Negate(self.visit(e.expr))
        if isinstance(e, pp.VectorSelector):
            return self.vector_select(e)
        if isinstance(e, pp.MatrixSelector):
            return self.bad(
                "range vector as a result (a rule must return an instant vector or scalar)"
            )
        if isinstance(e, pp.SubqueryExpr):
            self.visit(e.expr)
            return self.bad(
                "range vector as a result (a rule must return an instant vector or scalar)"
            )
        if isinstance(e, pp.Call):
            return self.call(e)
        if isinstance(e, pp.AggregateExpr):
            return self.aggregate(e)
        if isinstance(e, pp.BinaryExpr):
            return self.binary(e)
        return self.bad(f"expression type {type(e).__name__}")  # pragma: no cover

    def call(self, e: Any) -> Node:
        name = e.func.name
        args = list(e.args)
        if name in RANGE_KERNELS or name == "absent_over_time":
            return self.range_call(name, args)
        if name not in _INSTANT_FUNCS:
            for a in args:
                if not isinstance(a, pp.MatrixSelector):
                    self.visit(a)
            return self.bad(f"function {name} (not a Prometheus 2.42 function)")
        if name == "timestamp":
            return Timestamp(self.visit(args[0]))
        if name == "absent":
            return fn.Absent(self.visit(args[0]), self.absent_labels(args[0]))
        if name == "label_replace":
            strs = [self.string(a) for a in args[1:]]
            return LabelReplace(self.visit(args[0]), *strs)
        if name == "label_join":
            strs = [self.string(a) for a in args[1:]]
            return LabelJoin(self.visit(args[0]), strs[0], strs[1], strs[2:])
        nodes = [self.visit(a) for a in args]
        if name in fn.MATH_FUNCS:
            return fn.MathFunc(nodes[0], fn.MATH_FUNCS[name])
        if name in DATE_FUNCS:
            return DateFunc(nodes[0] if nodes else None, DATE_FUNCS[name])
        if name == "histogram_quantile":
            return HistogramQuantile(nodes[0], nodes[1])
        if name in _HISTOGRAM_FUNCS:
            return NativeOnly(nodes)
        simple: dict[str, Any] = {
            "clamp": lambda: fn.Clamp(nodes[0], nodes[1], nodes[2]),
            "clamp_min": lambda: fn.Clamp(nodes[0], nodes[1], None),
            "clamp_max": lambda: fn.Clamp(nodes[0], None, nodes[1]),
            "round": lambda: fn.Round(nodes[0], nodes[1] if len(nodes) > 1 else None),
            "scalar": lambda: fn.ScalarOf(nodes[0]),
            "vector": lambda: fn.VectorOf(nodes[0]),
            "time": fn.Time,
            "pi": fn.Pi,
            "sort": lambda: fn.Sort(nodes[0], False),
            "sort_desc": lambda: fn.Sort(nodes[0], True),
        }
        node: Node = simple[name]()
        return node

    def string(self, e: Any) -> str:
        while isinstance(e, pp.ParenExpr):
            e = e.expr
        if isinstance(e, pp.StringLiteral):
            return str(e.val)
        self.bad("a string argument that is not a literal")
        return ""

    def absent_labels(self, arg: Any) -> LabelSet:
        while isinstance(arg, pp.ParenExpr):
            arg = arg.expr
        if isinstance(arg, pp.MatrixSelector):
            arg = arg.vector_selector
        if not isinstance(arg, pp.VectorSelector):
            return ()
        labels: dict[str, str] = {}
        has: set[str] = set()
        for m in arg.matchers.matchers:
            if m.name == NAME:
                continue
            if m.op == pp.MatchOp.Equal and m.name not in has:
                labels[m.name] = m.value
                has.add(m.name)
            else:
                labels.pop(m.name, None)
        return tuple(sorted(labels.items()))

    def range_call(self, name: str, args: list[Any]) -> Node:
        params: list[Node] = []
        msel = None
        for a in args:
            inner = a
            while isinstance(inner, pp.ParenExpr):
                inner = inner.expr
            if isinstance(inner, (pp.MatrixSelector, pp.SubqueryExpr)):
                msel = inner
            else:
                params.append(self.visit(a))
        assert msel is not None  # the parser checked the argument types
        if isinstance(msel, pp.SubqueryExpr):
            moving = slides_with_steps(name, args, self.at_ms(msel))
            return self.subquery_call(name, msel, params, moving)
        vs = msel.vector_selector
        sel = self.selector(vs, track_resets=name in _COUNTER_FUNCS)
        if sel is None:
            return Number(0.0)
        range_ms = _ms(msel.range)
        offset = _ms(vs.offset)
        self.max_range_ms = max(self.max_range_ms, range_ms + offset)
        at = self.at_ms(vs)
        if name == "absent_over_time":
            return AbsentOverTime(sel, range_ms, offset, at, self.absent_labels(msel))
        kernel = RANGE_KERNELS[name]
        return RangeCall(
            kernel,
            sel,
            range_ms=range_ms,
            offset=offset,
            at=at,
            params=params,
            keep_name=name == "last_over_time",
            moving=slides_with_steps(name, args, at),
        )

    def subquery_call(self, name: str, e: Any, params: list[Node], moving: bool) -> Node:
        outer = self.max_range_ms
        self.max_range_ms = 0
        inner = self.visit(e.expr)
        range_ms = _ms(e.range)
        offset = _ms(e.offset)
        # Retention: the inner expression reads its own ranges back from the first step.
        self.max_range_ms = max(outer, self.max_range_ms + range_ms + offset)
        sub = Subquery(
            inner, range_ms=range_ms, step_ms=_ms(e.step), offset=offset, at=self.at_ms(e)
        )
        if name == "absent_over_time":
            return SubqueryAbsent(sub)
        keep = name == "last_over_time"
        return SubqueryCall(RANGE_KERNELS[name], sub, params, keep_name=keep, moving=moving)

    def aggregate(self, e: Any) -> Node:
        op = str(e.op)
        arg = self.visit(e.expr)
        param = self.visit(e.param) if e.param is not None else None
        if param is not None and param_at_first_step(e):
            param = AtFirstStep(param)
        if op not in AGGREGATORS:
            return self.bad(f"aggregation {op} (not a Prometheus 2.42 aggregation)")
        grouping: list[str] = []
        without = False
        if e.modifier is not None:
            grouping = list(e.modifier.labels)
            without = e.modifier.type == pp.AggModifierType.Without
        for label in grouping:
            if not valid_label_name(label):
                self.bad(f"quoted label name {label!r} (Prometheus 3 syntax)")
        return Aggregate(op, arg, param, grouping, without)

    def binary(self, e: Any) -> Node:
        op = str(e.op)
        lhs = self.visit(e.lhs)
        rhs = self.visit(e.rhs)
        mod = e.modifier
        return_bool = bool(mod is not None and mod.return_bool)
        if op not in ARITHMETIC and op not in COMPARISONS and op not in SET_OPS:
            return self.bad(f"operator {op}")  # pragma: no cover
        if lhs.kind == "scalar" and rhs.kind == "scalar":
            return ScalarBinary(op, lhs, rhs)
        if lhs.kind == "scalar" or rhs.kind == "scalar":
            swap = lhs.kind == "scalar"
            vec, sc = (rhs, lhs) if swap else (lhs, rhs)
            return VectorScalarBinary(op, vec, sc, swap, return_bool)
        matching = self.matching(mod)
        if op in SET_OPS:
            return SetBinary(op, lhs, rhs, matching)
        return VectorBinary(op, lhs, rhs, matching, return_bool)

    def matching(self, mod: Any) -> Matching:
        if mod is None:
            return Matching("one-to-one", False, [], [])
        card = _cardinality(mod.card)
        on = False
        labels: list[str] = []
        if mod.matching is not None:
            on = mod.matching.type == pp.LabelModifierType.Include
            labels = list(mod.matching.labels)
        include = list(mod.group_labels or [])
        for label in [*labels, *include]:
            if not valid_label_name(label):
                self.bad(f"quoted label name {label!r} (Prometheus 3 syntax)")
        return Matching(card, on, labels, include)


def compile_text(text: str) -> Compiled:
    """Parse and compile ``text``; raise ``PromQLError`` naming every unsupported construct."""
    ast, negative_at = parse_text(text)
    c = _Compiler(text)
    c.negative_at = negative_at
    root = c.visit(ast)
    if not any("quoted" in u for u in c.unsupported) and quoted_names(text):
        c.bad("quoted label or metric name (Prometheus 3 syntax)")
    if root.kind == "string" and not c.unsupported:
        c.bad("string result (a rule must return an instant vector or scalar)")
    if c.unsupported:
        raise PromQLError(
            f"cannot evaluate {text!r}: not supported: {', '.join(c.unsupported)}",
            expr=text,
            constructs=tuple(c.unsupported),
        )
    return Compiled(root, c.max_range_ms, frozenset(c.metric_names))
