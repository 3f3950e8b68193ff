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


def _group_number(name: str) -> int:
    # Go's extract(): ASCII digits only, no leading zero, at most ~9 digits; else a name.
    num = 0
    for ch in name:
        if not "0" <= ch <= "9" or num >= 100_000_000:
            return -1
        num = num * 10 + ord(ch) - 48
    if name[0] == "0" and len(name) > 1:
        return -1
    return num


def expand(template: str, match: Any, groupindex: dict[str, int], ngroups: int) -> str:
    """Go's ``Regexp.ExpandString``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``."""
    out: list[str] = []
    rest = template
    while rest:
        before, dollar, after = rest.partition("$")
        out.append(before)
        if not dollar:
            return "".join(out)
        rest = after
        if rest.startswith("$"):
            out.append("$")
            rest = rest[1:]
            continue
        brace = rest.startswith("{")
        body = rest[1:] if brace else rest
        k = 0
        while k < len(body) and (body[k].isalpha() or body[k].isdecimal() or body[k] == "_"):
            k += 1
        if k == 0 or (brace and (k >= len(body) or body[k] != "}")):
            out.append("$")  # malformed: the $ is literal text
            continue
        name = body[:k]
        rest = body[k + 1 :] if brace else body[k:]
        num = _group_number(name)
        idx = num if num >= 0 else groupindex.get(name, -1)
        if 0 <= idx <= ngroups:
            text = match.group(idx)
            if text is not None:
                out.append(text)
    return "".join(out)


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
