"""Binary operators: arithmetic, comparisons (filter or ``bool``), ``and``/``or``/``unless``,
between scalars and vectors, with ``on``/``ignoring`` and ``group_left``/``group_right``.

As in Prometheus 2.42: arithmetic drops the metric name, a filtering comparison keeps
the left-hand element (name and value), ``bool`` drops the name; one-to-one matching
keeps only the ``on`` labels or removes the ``ignoring`` ones; many-to-one keeps the
"many" side's labels plus the ``group_x`` labels of the "one" side; a comparison with the
scalar on the left still returns the vector's value.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from operator import add, eq, ge, gt, le, lt, mul, ne, sub

from sidecar.core.model import LabelSet
from sidecar.gocompat.gofmt import go_labels
from sidecar.rules.promql.eval import Ctx, Node
from sidecar.rules.promql.gomath import go_pow
from sidecar.rules.promql.gotrig import go_atan2
from sidecar.rules.promql.values import (
    MEMO_SIZE,
    NAME,
    Elem,
    PromQLError,
    check_distinct,
    drop_name,
    go_div,
    go_mod,
)

__all__ = [
    "ARITHMETIC",
    "COMPARISONS",
    "SET_OPS",
    "Matching",
    "ScalarBinary",
    "SetBinary",
    "VectorBinary",
    "VectorScalarBinary",
]

ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": add,
    "-": sub,
    "*": mul,
    "/": go_div,
    "%": go_mod,
    "^": go_pow,
    "atan2": go_atan2,
}
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "==": eq,
    "!=": ne,
    ">": gt,
    "<": lt,
    ">=": ge,
    "<=": le,
}
SET_OPS = frozenset({"and", "or", "unless"})
# atan2 is arithmetic but Prometheus 2.42 keeps the metric name for it.
_DROPS_NAME = frozenset({"+", "-", "*", "/", "%", "^"})


class Matching:
    """``on``/``ignoring`` labels, cardinality and ``group_x`` labels of a vector operation."""

    def __init__(self, card: str, on: bool, labels: list[str], include: list[str]) -> None:
        self.card = card  # "one-to-one", "many-to-one", "one-to-many", "many-to-many"
        self.on = on
        self.labels = frozenset(labels)
        self.include = sorted(set(include))
        self._ignored = self.labels | {NAME}
        self.signature: Callable[[LabelSet], LabelSet] = lru_cache(maxsize=MEMO_SIZE)(
            self._signature
        )
        """The labels two elements must share to match (memoised per label set)."""

    def _signature(self, ls: LabelSet) -> LabelSet:
        if self.on:
            return tuple(p for p in ls if p[0] in self.labels)
        return tuple(p for p in ls if p[0] not in self._ignored)


class ScalarBinary(Node):
    """Scalar op scalar (comparisons need ``bool`` and give 0 or 1)."""

    kind = "scalar"

    def __init__(self, op: str, lhs: Node, rhs: Node) -> None:
        self.lhs = lhs
        self.rhs = rhs
        self.arith = ARITHMETIC.get(op)
        self.cmp = COMPARISONS.get(op)

    def ev(self, ctx: Ctx) -> float:
        """The operation on two numbers."""
        a = self.lhs.ev(ctx)
        b = self.rhs.ev(ctx)
        if self.arith is not None:
            return self.arith(a, b)
        assert self.cmp is not None
        return 1.0 if self.cmp(a, b) else 0.0


class VectorScalarBinary(Node):
    """Vector op scalar or scalar op vector (``swap``: the scalar is on the left)."""

    def __init__(self, op: str, vec: Node, scalar: Node, swap: bool, return_bool: bool) -> None:
        self.vec = vec
        self.scalar = scalar
        self.swap = swap
        self.return_bool = return_bool
        self.arith = ARITHMETIC.get(op)
        self.cmp = COMPARISONS.get(op)
        self.drop = op in _DROPS_NAME or return_bool
        self.distinct_wo_name = True if self.drop else vec.distinct_wo_name

    def ev(self, ctx: Ctx) -> list[Elem]:
        """Apply the operation element by element."""
        vec = self.vec.ev(ctx)
        s = self.scalar.ev(ctx)
        out: list[Elem]
        if self.arith is not None:
            f = self.arith
            if not self.drop:
                out = [(ls, f(s, v) if self.swap else f(v, s)) for ls, v in vec]
            elif self.swap:
                out = [(drop_name(ls), f(s, v)) for ls, v in vec]
            else:
                out = [(drop_name(ls), f(v, s)) for ls, v in vec]
        else:
            c = self.cmp
            assert c is not None
            if self.return_bool:
                if self.swap:
                    out = [(drop_name(ls), 1.0 if c(s, v) else 0.0) for ls, v in vec]
                else:
                    out = [(drop_name(ls), 1.0 if c(v, s) else 0.0) for ls, v in vec]
            elif self.swap:
                out = [e for e in vec if c(s, e[1])]
            else:
                out = [e for e in vec if c(e[1], s)]
        if self.drop and not self.vec.distinct_wo_name:
            check_distinct(out)
        return out


class VectorBinary(Node):
    """Vector op vector, arithmetic or comparison, one-to-one or many-to-one."""

    def __init__(
        self, op: str, lhs: Node, rhs: Node, matching: Matching, return_bool: bool
    ) -> None:
        self.lhs = lhs
        self.rhs = rhs
        self.m = matching
        self.return_bool = return_bool
        self.arith = ARITHMETIC.get(op)
        self.cmp = COMPARISONS.get(op)
        self.drop = op in _DROPS_NAME
        self.distinct_wo_name = self.drop or return_bool or matching.card == "one-to-one"
        # An element's result labels depend only on the two matched label sets.
        self._labels = lru_cache(maxsize=MEMO_SIZE)(self._result_labels)

    def _result_labels(self, ls: LabelSet, rs: LabelSet) -> LabelSet:
        m = self.m
        drop = self.drop or self.return_bool
        if m.card == "one-to-one":
            if m.on:
                return tuple(p for p in ls if p[0] in m.labels and not (drop and p[0] == NAME))
            out = tuple(p for p in ls if p[0] not in m.labels)
            return drop_name(out) if drop else out
        d = dict(ls)
        if self.drop:
            d.pop(NAME, None)
        if m.include:
            rd = dict(rs)
            for name in m.include:
                value = rd.get(name, "")
                if value:
                    d[name] = value
                else:
                    d.pop(name, None)
        if self.return_bool:
            d.pop(NAME, None)
        return tuple(sorted(d.items()))

    def ev(self, ctx: Ctx) -> list[Elem]:
        """Match elements by signature and apply the operation."""
        lhs = self.lhs.ev(ctx)
        rhs = self.rhs.ev(ctx)
        if not lhs or not rhs:
            return []
        m = self.m
        swapped = m.card == "one-to-many"
        if swapped:
            lhs, rhs = rhs, lhs
        sig = m.signature
        right: dict[LabelSet, Elem] = {}
        for e in rhs:
            key = sig(e[0])
            dup = right.get(key)
            if dup is not None:
                side = "left" if swapped else "right"
                raise PromQLError(
                    f"found duplicate series for the match group {go_labels(key)} on the {side} "
                    f"hand-side of the operation: [{go_labels(e[0])}, {go_labels(dup[0])}]"
                    ";many-to-many matching not allowed: matching labels must be unique on one side"
                )
            right[key] = e
        one_to_one = m.card == "one-to-one"
        seen: dict[LabelSet, set[LabelSet] | None] = {}
        arith = self.arith
        cmp = self.cmp
        out: list[Elem] = []
        for ls, lv in lhs:
            key = sig(ls)
            r = right.get(key)
            if r is None:
                continue
            a, b = (r[1], lv) if swapped else (lv, r[1])
            if arith is not None:
                value = arith(a, b)
                keep = True
            else:
                assert cmp is not None
                keep = cmp(a, b)
                value = a
                if self.return_bool:
                    value = 1.0 if keep else 0.0
                    keep = True
            if not keep:
                continue
            metric = self._labels(ls, r[0])
            if one_to_one:
                if key in seen:
                    raise PromQLError(
                        "multiple matches for labels: many-to-one matching must be explicit "
                        "(group_left/group_right)"
                    )
                seen[key] = None
            else:
                inserted = seen.get(key)
                if inserted is None:
                    inserted = seen[key] = set()
                elif metric in inserted:
                    raise PromQLError(
                        "multiple matches for labels: grouping labels must ensure unique matches"
                    )
                inserted.add(metric)
            out.append((metric, value))
        return out


class SetBinary(Node):
    """``and``, ``or``, ``unless`` (always many-to-many)."""

    def __init__(self, op: str, lhs: Node, rhs: Node, matching: Matching) -> None:
        self.op = op
        self.lhs = lhs
        self.rhs = rhs
        self.m = matching
        self.distinct_wo_name = op != "or" and lhs.distinct_wo_name

    def ev(self, ctx: Ctx) -> list[Elem]:
        """Filter or merge by signature."""
        lhs = self.lhs.ev(ctx)
        rhs = self.rhs.ev(ctx)
        sig = self.m.signature
        if self.op == "and":
            if not lhs or not rhs:
                return []
            keys = {sig(e[0]) for e in rhs}
            return [e for e in lhs if sig(e[0]) in keys]
        if self.op == "or":
            if not lhs:
                return list(rhs)
            if not rhs:
                return list(lhs)
            keys = {sig(e[0]) for e in lhs}
            return [*lhs, *(e for e in rhs if sig(e[0]) not in keys)]
        if not lhs or not rhs:
            return list(lhs)
        keys = {sig(e[0]) for e in rhs}
        return [e for e in lhs if sig(e[0]) not in keys]
