"""Functions that rewrite labels: ``label_replace`` (with Go's ``$1``/``${name}``
expansion) and ``label_join``.

Both keep the metric name and, as in Prometheus, raise at evaluation time for an invalid
label name or regular expression, then check that no two elements end up with the same
label set.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sidecar.core.model import LabelSet
from sidecar.gocompat.goregexp import expand
from sidecar.rules.promql.eval import Ctx, Node
from sidecar.rules.promql.selectors import compile_regex
from sidecar.rules.promql.values import (
    MEMO_SIZE,
    Elem,
    PromQLError,
    check_distinct,
    valid_label_name,
)

__all__ = ["LabelJoin", "LabelReplace", "expand"]


class _Relabel(Node):
    """A function that rewrites each element's labels, remembering each rewrite."""

    arg: Node
    error: str | None

    def __init__(self) -> None:
        self._relabelled = lru_cache(maxsize=MEMO_SIZE)(self._relabel)

    def ev(self, ctx: Ctx) -> list[Elem]:
        """Relabel every element; the result must still have distinct label sets."""
        if self.error is not None:
            raise PromQLError(self.error)
        relabelled = self._relabelled
        out = [(relabelled(ls), v) for ls, v in self.arg.ev(ctx)]
        check_distinct(out)
        return out

    def _relabel(self, ls: LabelSet) -> LabelSet:
        raise NotImplementedError


class LabelReplace(_Relabel):
    """``label_replace(v, dst, replacement, src, regex)``: where ``src`` matches ``regex``,
    ``dst`` is set to the expanded replacement."""

    def __init__(self, arg: Node, dst: str, repl: str, src: str, regex: str) -> None:
        self.arg = arg
        self.dst = dst
        self.repl = repl
        self.src = src
        self.error: str | None = None
        self.rx: Any = None
        try:
            self.rx = compile_regex(regex)
        except PromQLError:
            self.error = f"invalid regular expression in label_replace(): {regex}"
        if self.error is None and not valid_label_name(dst):
            self.error = f"invalid destination label name in label_replace(): {dst}"
        super().__init__()

    def _relabel(self, ls: LabelSet) -> LabelSet:
        d = dict(ls)
        m = self.rx.fullmatch(d.get(self.src, ""))
        if m is None:
            return ls
        res = expand(self.repl, m, self.rx.groupindex, self.rx.groups)
        d.pop(self.dst, None)
        if res:
            d[self.dst] = res
        return tuple(sorted(d.items()))


class LabelJoin(_Relabel):
    """``label_join(v, dst, separator, src...)``: the source values joined into ``dst``
    (an empty result removes ``dst``)."""

    def __init__(self, arg: Node, dst: str, sep: str, srcs: list[str]) -> None:
        self.arg = arg
        self.dst = dst
        self.sep = sep
        self.srcs = srcs
        self.error: str | None = None
        for src in srcs:
            if not valid_label_name(src):
                self.error = f"invalid source label name in label_join(): {src}"
                break
        if self.error is None and not valid_label_name(dst):
            self.error = f"invalid destination label name in label_join(): {dst}"
        super().__init__()

    def _relabel(self, ls: LabelSet) -> LabelSet:
        d = dict(ls)
        joined = self.sep.join(d.get(s, "") for s in self.srcs)
        d.pop(self.dst, None)
        if joined:
            d[self.dst] = joined
        return tuple(sorted(d.items()))
