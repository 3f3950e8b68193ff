"""``histogram_quantile`` over classic ``_bucket`` histograms, and the native-histogram
functions, as Prometheus 2.42 evaluates them on float series.

A classic histogram is one series per bucket, its upper bound in the ``le`` label.
Prometheus 2.42 groups the input by every label but ``le`` (the metric name included),
parses ``le`` with Go's ``strconv.ParseFloat`` (a bucket whose ``le`` does not parse, or
overflows, is skipped), sorts the buckets by bound with ``sort.Sort``, merges buckets of
equal bound, lifts any count lower than one before it (the "envelope" that makes counts
monotonic), and interpolates linearly inside the bucket holding rank ``q * total``:

- ``q`` NaN gives NaN, ``q < 0`` gives -Inf, ``q > 1`` gives +Inf (before anything else);
- no ``+Inf`` bucket, fewer than two buckets after merging, or a total of 0 give NaN;
- a rank in the ``+Inf`` bucket gives the second-highest bound;
- a rank in the lowest bucket interpolates from 0, unless that bucket's bound is <= 0,
  which is then returned as it is.

The output drops ``__name__`` and ``le``; two histograms that differ only by name then
collide, and the query fails with "vector cannot contain metrics with the same labelset",
as in Prometheus.

The sidecar's store holds float samples only, so ``histogram_count``, ``histogram_sum``
and ``histogram_fraction``, which 2.42 computes only from native-histogram samples and
which skip float samples, return an empty vector, exactly as they do in 2.42 over floats.
"""

from __future__ import annotations

import math
import re
from math import isnan

from sidecar.rules.promql.eval import Ctx, Node
from sidecar.rules.promql.values import NAME, Elem, check_distinct, go_div

__all__ = ["HistogramQuantile", "NativeOnly", "bucket_quantile", "go_parse_float"]

_LE = "le"
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+")
_INF = re.compile(r"[+-]?(?:inf|infinity)", re.IGNORECASE)


def _underscores_ok(s: str) -> bool:
    # Go's underscoreOK: an underscore only between digits, or after the base prefix.
    s = s[1:] if s[:1] in ("+", "-") else s
    hexa = s[:2].lower() == "0x"
    saw = "0" if hexa else "^"
    for ch in s[2:] if hexa else s:
        if ch in "0123456789" or (hexa and ch in "abcdefABCDEF"):
            saw = "0"
        elif ch == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def go_parse_float(s: str) -> float | None:
    """Go's ``strconv.ParseFloat(s, 64)``; None where Go returns an error (bad syntax, or
    a finite number too large for a double)."""
    if _INF.fullmatch(s):
        return -math.inf if s.startswith("-") else math.inf
    if s.lower() == "nan":
        return math.nan
    if "_" in s:
        if not _underscores_ok(s):
            return None
        s = s.replace("_", "")
    if _DECIMAL.fullmatch(s):
        v = float(s)
    elif _HEX.fullmatch(s):
        try:
            v = float.fromhex(s)
        except OverflowError:
            return None
    else:
        return None
    return None if math.isinf(v) else v


def _go_sort(buckets: list[list[float]]) -> None:
    """``sort.Sort`` by upper bound. Go 1.19's pdqsort is an insertion sort up to 12
    elements; beyond that any correct sort gives the same order when no bound is NaN
    (equal bounds are merged next, and two equal counts add the same either way)."""
    if len(buckets) > 12:
        buckets.sort(key=lambda b: b[0])
        return
    for i in range(1, len(buckets)):
        j = i
        while j > 0 and buckets[j][0] < buckets[j - 1][0]:
            buckets[j], buckets[j - 1] = buckets[j - 1], buckets[j]
            j -= 1


def _search(n: int, counts: list[float], rank: float) -> int:
    # Go's sort.Search: the smallest i in [0, n) with counts[i] >= rank (n if none), by
    # bisection, which matters when a NaN count breaks the order.
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        if not counts[mid] >= rank:
            lo = mid + 1
        else:
            hi = mid
    return lo


def bucket_quantile(q: float, buckets: list[list[float]]) -> float:
    """Prometheus 2.42's ``bucketQuantile`` over ``[upper_bound, count]`` pairs (reordered
    and modified in place)."""
    if isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    _go_sort(buckets)
    if buckets[-1][0] != math.inf:
        return math.nan
    merged = [buckets[0]]
    for b in buckets[1:]:
        if b[0] == merged[-1][0]:
            merged[-1][1] += b[1]
        else:
            merged.append(b)
    top = merged[0][1]
    for b in merged[1:]:
        if b[1] > top:
            top = b[1]
        elif b[1] < top:
            b[1] = top
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    counts = [b[1] for b in merged]
    i = _search(len(merged) - 1, counts, rank)
    if i == len(merged) - 1:
        return merged[-2][0]
    if i == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start = 0.0
    end, count = merged[i]
    if i > 0:
        start = merged[i - 1][0]
        count -= merged[i - 1][1]
        rank -= merged[i - 1][1]
    return start + (end - start) * go_div(rank, count)


class HistogramQuantile(Node):
    """``histogram_quantile(q, v)`` over classic bucket series."""

    distinct_wo_name = True

    def __init__(self, q: Node, arg: Node) -> None:
        self.q = q
        self.arg = arg

    def ev(self, ctx: Ctx) -> list[Elem]:
        """One quantile per histogram (the input grouped by all labels but ``le``)."""
        q = self.q.ev(ctx)
        groups: dict[tuple[tuple[str, str], ...], list[list[float]]] = {}
        for labels, v in self.arg.ev(ctx):
            le = ""
            for name, value in labels:
                if name == _LE:
                    le = value
                    break
            bound = go_parse_float(le)
            if bound is None:
                continue
            key = tuple(p for p in labels if p[0] != _LE)
            groups.setdefault(key, []).append([bound, v])
        out = [
            (tuple(p for p in key if p[0] != NAME), bucket_quantile(q, buckets))
            for key, buckets in groups.items()
        ]
        check_distinct(out)
        return out


class NativeOnly(Node):
    """``histogram_count``, ``histogram_sum``, ``histogram_fraction``: nothing from float
    samples (their scalar arguments and input are still evaluated, errors and all)."""

    distinct_wo_name = True

    def __init__(self, args: list[Node]) -> None:
        self.args = args

    def ev(self, ctx: Ctx) -> list[Elem]:
        """An empty vector."""
        for a in self.args:
            a.ev(ctx)
        return []
