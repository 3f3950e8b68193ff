"""From PromQL text to promql-parser's tree, refusing by the text what 2.42 refuses.

promql-parser speaks a newer PromQL than Prometheus 2.42, and some of what it accepts
cannot be told apart in its tree: Prometheus 3's durations read as numbers (``5m`` as an
argument, ``offset 5``), quoted names where the tree keeps no trace of the quotes, a
negative ``@`` timestamp (which it cannot hold at all), an ``@`` out of 2.42's bounds.
This module owns those checks on the text, made around the parse in Prometheus 2.42's own
words (``syntax_errors.explain``), and the parser's set-up for 2.42 (``holt_winters``,
renamed in 3.x). What the tree does show (``limitk``, ``mad_over_time``, ``or`` between
matchers...) ``compile`` finds while walking it.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import promql_parser as pp

from sidecar.rules.promql.lexer import rewrite_negative_at
from sidecar.rules.promql.syntax_errors import explain
from sidecar.rules.promql.values import PromQLError

__all__ = ["parse_text", "quoted_names"]

with contextlib.suppress(ValueError):  # a newer parser that knows it already
    # Prometheus 2.42 still has holt_winters; promql-parser 0.12 only knows its 3.x name.
    pp.register_extra_functions(
        [
            pp.Function(
                "holt_winters",
                [pp.ValueType.Matrix, pp.ValueType.Scalar, pp.ValueType.Scalar],
                pp.ValueType.Vector,
            )
        ]
    )

_QUOTE_CTX_KEYWORDS = ("by", "without", "on", "ignoring", "group_left", "group_right")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', re.DOTALL)
_COMMENT = re.compile(r"#[^\n]*")
_NEG_AT = re.compile(r"@\s*-")
_WORD = re.compile(r"[A-Za-z0-9_:.]+")


def parse_text(text: str) -> tuple[Any, dict[int, int]]:
    """Parse ``text`` with promql-parser; raise ``PromQLError`` where 2.42 would refuse it.

    Returns the tree and the negative ``@`` times (in ms) that stand-ins in it stand for.
    """
    # promql-parser cannot hold a time before 1970: `@ -N` is parsed as a stand-in.
    parsed_text, negative_at = rewrite_negative_at(text)
    bounds = explain(text) if "@" in text else None
    if bounds is not None and "timestamp out of bounds" in bounds:
        raise PromQLError(bounds, expr=text)
    if _NEG_AT.search(_COMMENT.sub("", _STRING.sub('""', parsed_text))):
        raise PromQLError(
            f"cannot evaluate {text!r}: not supported: negative @ timestamp",
            expr=text,
            constructs=("negative @ timestamp",),
        )
    try:
        ast = pp.parse(parsed_text)
    except ValueError as exc:
        message = explain(text) or f"invalid PromQL expression {text!r}: {exc}"
        raise PromQLError(message, expr=text) from exc
    # promql-parser also reads Prometheus 3's durations as numbers (`5m`, `offset 5`),
    # which 2.42 refuses: its own parser's words say where.
    refusal = explain(text)
    if refusal is not None and "duration" in refusal:
        raise PromQLError(refusal, expr=text)
    return ast, negative_at


def quoted_names(text: str) -> bool:
    """True when a string literal stands where 2.42 wants a bare name (a Prometheus 3 form)."""
    stack: list[str] = []
    last = ""  # the last significant token before the current position
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch in "\"'`":
            m = _STRING.match(text, pos)
            if m is None:
                return False
            top = stack[-1] if stack else ""
            if last in ("{", ",") and top == "{":
                return True
            if last in ("(", ",") and top in _QUOTE_CTX_KEYWORDS:
                return True
            pos = m.end()
            last = "str"
            continue
        if ch.isspace():
            pos += 1
            continue
        if ch == "#":  # a comment runs to the end of the line
            end = text.find("\n", pos)
            pos = len(text) if end < 0 else end
            continue
        if ch == "{":
            stack.append("{")
        elif ch == "(":
            stack.append(last if last in _QUOTE_CTX_KEYWORDS else "(")
        elif ch in ")}" and stack:
            stack.pop()
        word = _WORD.match(text, pos)
        if word is not None:
            last = word.group().lower()
            pos = word.end()
            continue
        last = ch
        pos += 1
    return False
