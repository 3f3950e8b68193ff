"""The lines a rule draws on a chart: its threshold, and the memory limit it compares with.

An alerting rule that compares a metric with a constant (``conn_pool_active > 95``), or
with a share of the app's memory limit (``go_memstats_heap_inuse_bytes /
leak_sidecar_app_memory_limit_bytes > 0.8``, ``x > 0.85 * leak_sidecar_app_memory_limit_bytes``)
has a threshold in the metric's own units: the status page draws it across that metric's
chart, and draws the limit itself on a chart whose metric a rule measures against it, so
that the heap is seen against the limit on one chart. Only a bare selector is charted
against: ``delta(cache_keys_total[10m]) > 300000`` compares a change over a window, not
the series on the chart, and draws nothing. The comparisons are found under ``and``,
``or``, ``unless`` and parentheses; ``bool`` comparisons are filters of nothing and skipped.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import promql_parser as pp

from sidecar.web.units import si

__all__ = ["MEMORY_LIMIT_METRIC", "RefLine", "chart_refs", "rule_thresholds"]

MEMORY_LIMIT_METRIC = "leak_sidecar_app_memory_limit_bytes"
"""The app's memory limit as the sidecar exports it (a constant series)."""

_FLIP = {">": "<", ">=": "<=", "<": ">", "<=": ">="}
_SET_OPS = frozenset({"and", "or", "unless"})


@dataclass(frozen=True, slots=True)
class RefLine:
    """A horizontal line on a chart: a rule's threshold or the memory limit."""

    value: float
    kind: Literal["threshold", "limit"]
    label: str
    """What the line is and where: ``PoolSaturated > 95``,
    ``OOMImminent > 80% of the limit (2.58G)``, ``memory limit 3.22G``."""


@dataclass(frozen=True, slots=True)
class _Threshold:
    metric: str
    op: str
    value: float
    text: str
    per_limit: bool


def _strip(node: Any) -> Any:
    while isinstance(node, pp.ParenExpr):
        node = node.expr
    return node


def _limit(node: Any) -> bool:
    """``leak_sidecar_app_memory_limit_bytes``, or it guarded by ``> 0``."""
    node = _strip(node)
    if isinstance(node, pp.VectorSelector):
        return node.name == MEMORY_LIMIT_METRIC
    if isinstance(node, pp.BinaryExpr) and str(node.op) == ">":
        rhs = _strip(node.rhs)
        return _limit(node.lhs) and isinstance(rhs, pp.NumberLiteral) and rhs.val == 0
    return False


def _measured(node: Any) -> tuple[str, bool] | None:
    """The metric a side measures, and whether it is divided by the limit."""
    node = _strip(node)
    if isinstance(node, pp.VectorSelector) and node.name and node.name != MEMORY_LIMIT_METRIC:
        return node.name, False
    if isinstance(node, pp.BinaryExpr) and str(node.op) == "/" and _limit(node.rhs):
        inner = _measured(node.lhs)
        if inner is not None and not inner[1]:
            return inner[0], True
    return None


def _constant(node: Any) -> tuple[float, bool] | None:
    """A constant side: a number, the limit, or a number times the limit."""
    node = _strip(node)
    if isinstance(node, pp.NumberLiteral):
        return float(node.val), False
    if _limit(node):
        return 1.0, True
    if isinstance(node, pp.BinaryExpr) and str(node.op) == "*":
        for side, lim in ((node.lhs, node.rhs), (node.rhs, node.lhs)):
            num = _strip(side)
            if isinstance(num, pp.NumberLiteral) and _limit(lim):
                return float(num.val), True
    return None


def _comparisons(node: Any) -> Iterable[_Threshold]:
    node = _strip(node)
    if not isinstance(node, pp.BinaryExpr):
        return
    op = str(node.op)
    if op in _SET_OPS:
        yield from _comparisons(node.lhs)
        yield from _comparisons(node.rhs)
        return
    if op not in _FLIP or (node.modifier is not None and node.modifier.return_bool):
        return
    for side, other, cmp in ((node.lhs, node.rhs, op), (node.rhs, node.lhs, _FLIP[op])):
        measured, constant = _measured(side), _constant(other)
        if measured is None or constant is None:
            continue
        (metric, divided), (c, times_limit) = measured, constant
        if divided and times_limit:
            continue  # x / limit > limit: a ratio against bytes, no line in the metric's units
        per_limit = divided or times_limit
        text = f"{c * 100:g}% of the limit" if per_limit else f"{c:g}"
        yield _Threshold(metric, cmp, c, text, per_limit)


@functools.lru_cache(maxsize=256)
def rule_thresholds(name: str, expr: str) -> tuple[tuple[str, bool, RefLine], ...]:
    """``(metric, per_limit, line)`` for each comparison of a charted metric in ``expr``;
    a ``per_limit`` line's value is a share of the memory limit, to be multiplied by it."""
    try:
        root = pp.parse(expr)
    except Exception:  # noqa: BLE001 -- promql-parser raises bare errors; the rule is shown as err anyway
        return ()
    # Cached: the page asks on every view, and a rule's text rarely changes.
    return tuple(
        (t.metric, t.per_limit, RefLine(t.value, "threshold", f"{name} {t.op} {t.text}"))
        for t in _comparisons(root)
    )


def chart_refs(
    rules: Iterable[tuple[str, str]], memory_limit: float | None
) -> Mapping[str, tuple[RefLine, ...]]:
    """The lines to draw per metric name for ``(alert name, expr)`` pairs: each threshold
    in the metric's units, and the memory limit on a metric compared with it. A threshold
    that is a share of the limit is left out while the limit is unknown."""
    if memory_limit is not None and not (math.isfinite(memory_limit) and memory_limit > 0):
        memory_limit = None  # a limit of 0, NaN or infinity draws no line
    out: dict[str, list[RefLine]] = {}
    for name, expr in rules:
        for metric, per_limit, line in rule_thresholds(name, expr):
            lines = out.setdefault(metric, [])
            if not per_limit:
                lines.append(line)
                continue
            if memory_limit is None:
                continue
            value = line.value * memory_limit
            lines.append(RefLine(value, "threshold", f"{line.label} ({si(value)})"))
            limit = RefLine(memory_limit, "limit", f"memory limit {si(memory_limit)}")
            if limit not in lines:
                lines.append(limit)
    return {m: tuple(dict.fromkeys(lines)) for m, lines in out.items() if lines}
