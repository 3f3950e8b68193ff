"""Aggregation operators: sum, avg, min, max, count, group, stddev, stdvar, topk, bottomk,
quantile, count_values, with ``by`` / ``without``.

The arithmetic is Prometheus 2.42's ``aggregation``: a plain running sum, the incremental
mean of ``avg`` (each step divided by the count so it cannot overflow), Welford's method
for ``stddev``/``stdvar``, NaN replaced by any number in ``min``/``max``, and Go's
``container/heap`` for ``topk``/``bottomk`` so that ties pick the same series.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from math import isnan
from typing import Any

from sidecar.core.model import LabelSet
from sidecar.gocompat.gofmt import go_float, go_quote
from sidecar.rules.promql.eval import Ctx, Node
from sidecar.rules.promql.rangefuncs import quantile
from sidecar.rules.promql.values import (
    MEMO_SIZE,
    NAME,
    Elem,
    PromQLError,
    format_float_f,
    go_sqrt,
    valid_label_name,
)

__all__ = ["AGGREGATORS", "Aggregate"]

AGGREGATORS = frozenset(
    {
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    }
)
"""The aggregation operators of Prometheus 2.42 (``limitk`` and ``limit_ratio`` are 3.x)."""

_MAX_INT64_F = 9223372036854774784.0  # the largest float64 below 2**63, as Go's maxInt64


class _Group:
    __slots__ = ("count", "heap", "labels", "mean", "value", "values")

    def __init__(self, labels: LabelSet, value: float) -> None:
        self.labels = labels
        self.value = value
        self.mean = value
        self.count = 1
        self.heap: list[Elem] = []
        self.values: list[float] = []


def _less_min(a: Elem, b: Elem) -> bool:
    return a[1] != a[1] or a[1] < b[1]


def _less_max(a: Elem, b: Elem) -> bool:
    return a[1] != a[1] or a[1] > b[1]


def _up(h: list[Elem], j: int, less: Callable[[Elem, Elem], bool]) -> None:
    while j > 0:
        i = (j - 1) // 2
        if not less(h[j], h[i]):
            break
        h[i], h[j] = h[j], h[i]
        j = i


def _down(h: list[Elem], i: int, n: int, less: Callable[[Elem, Elem], bool]) -> None:
    while True:
        j1 = 2 * i + 1
        if j1 >= n:
            break
        j = j1
        j2 = j1 + 1
        if j2 < n and less(h[j2], h[j1]):
            j = j2
        if not less(h[j], h[i]):
            break
        h[i], h[j] = h[j], h[i]
        i = j


def _heap_offer(
    h: list[Elem], k: int, e: Elem, less: Callable[[Elem, Elem], bool], top: bool
) -> None:
    # Prometheus's topk/bottomk step: replace the heap's weakest element when e beats it.
    root = h[0][1]
    if len(h) < k or (root < e[1] if top else root > e[1]) or isnan(root):
        if len(h) == k:
            if k == 1:
                h[0] = e
                return
            n = len(h) - 1
            h[0], h[n] = h[n], h[0]
            _down(h, 0, n, less)
            h.pop()
        h.append(e)
        _up(h, len(h) - 1, less)


class Aggregate(Node):
    """An aggregation over an instant vector."""

    def __init__(
        self, op: str, arg: Node, param: Node | None, grouping: list[str], without: bool
    ) -> None:
        self.op = op
        self.arg = arg
        self.param = param
        self.grouping = sorted(set(grouping))
        self.without = without
        self._drop = frozenset([*grouping, NAME]) if without else frozenset()
        self._keep = frozenset(grouping)
        self._group_labels = lru_cache(maxsize=MEMO_SIZE)(self._group_key)
        # topk/bottomk return input elements; a `by (__name__)` keeps names.
        self.distinct_wo_name = (
            arg.distinct_wo_name if op in ("topk", "bottomk") else without or NAME not in self._keep
        )

    def _group_key(self, ls: LabelSet) -> LabelSet:
        if self.without:
            return tuple(p for p in ls if p[0] not in self._drop)
        return tuple(p for p in ls if p[0] in self._keep)

    def ev(self, ctx: Ctx) -> list[Elem]:
        """Aggregate the argument vector group by group."""
        op = self.op
        param: Any = self.param.ev(ctx) if self.param is not None else None
        vec = self.arg.ev(ctx)
        k = 0
        if op in ("topk", "bottomk"):
            if not -_MAX_INT64_F - 1024 <= param <= _MAX_INT64_F:
                raise PromQLError(f"Scalar value {go_float(param)} overflows int64")
            k = int(param)
            if k < 1:
                return []
        if op == "count_values":
            return self._count_values(str(param), vec)
        groups: dict[LabelSet, _Group] = {}
        group_labels = self._group_labels
        for e in vec:
            key = group_labels(e[0])
            v = e[1]
            g = groups.get(key)
            if g is None:
                g = groups[key] = _Group(key, v)
                if op in ("stddev", "stdvar"):
                    g.value = 0.0
                elif op in ("topk", "bottomk"):
                    g.heap.append(e)
                elif op == "quantile":
                    g.values.append(v)
                elif op == "group":
                    g.value = 1.0
                continue
            if op == "sum":
                g.value += v
            elif op == "avg":
                g.count += 1
                mean = g.mean
                if math.isinf(mean):
                    if math.isinf(v) and (mean > 0) == (v > 0):
                        continue
                    if not math.isinf(v) and not isnan(v):
                        continue
                g.mean = mean + (v / g.count - mean / g.count)
            elif op == "max":
                if g.value < v or g.value != g.value:
                    g.value = v
            elif op == "min":
                if g.value > v or g.value != g.value:
                    g.value = v
            elif op == "count":
                g.count += 1
            elif op in ("stddev", "stdvar"):
                g.count += 1
                delta = v - g.mean
                g.mean += delta / g.count
                g.value += delta * (v - g.mean)
            elif op == "topk":
                _heap_offer(g.heap, k, e, _less_min, True)
            elif op == "bottomk":
                _heap_offer(g.heap, k, e, _less_max, False)
            elif op == "quantile":
                g.values.append(v)
        return self._finish(groups.values(), param)

    def _finish(self, groups: Any, param: Any) -> list[Elem]:
        op = self.op
        out: list[Elem] = []
        for g in groups:
            if op in ("topk", "bottomk"):
                nums = [e for e in g.heap if e[1] == e[1]]
                nums.sort(key=lambda e: e[1], reverse=op == "topk")
                out.extend(nums)
                out.extend(e for e in g.heap if e[1] != e[1])
                continue
            if op == "avg":
                value = g.mean
            elif op == "count":
                value = float(g.count)
            elif op == "stdvar":
                value = g.value / g.count
            elif op == "stddev":
                value = go_sqrt(g.value / g.count)
            elif op == "quantile":
                value = quantile(param, g.values)
            else:
                value = g.value
            out.append((g.labels, value))
        return out

    def _count_values(self, label: str, vec: list[Elem]) -> list[Elem]:
        if not valid_label_name(label):
            raise PromQLError(f"invalid label name {go_quote(label)}")
        counts: dict[LabelSet, int] = {}
        keep = self._keep | {label}
        for ls, v in vec:
            d = dict(ls)
            d[label] = format_float_f(v)
            full = tuple(sorted(d.items()))
            if self.without:
                key = tuple(p for p in full if p[0] not in self._drop)
            else:
                key = tuple(p for p in full if p[0] in keep)
            counts[key] = counts.get(key, 0) + 1
        return [(key, float(n)) for key, n in counts.items()]
