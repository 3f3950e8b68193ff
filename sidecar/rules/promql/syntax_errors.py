"""Prometheus 2.42's words and position for a PromQL syntax error.

promql-parser, which parses for the evaluator, says ``invalid promql query`` where
Prometheus says ``1:7: parse error: unexpected end of input``. When it refuses a text,
``explain`` reads the text again the way Prometheus's own lexer and parser do: the lexer's
errors (``unexpected character inside braces: '0'``, ``unclosed left parenthesis``,
``bad number or duration syntax: "1x"``...) are Prometheus's exactly; the parser's are
``unexpected <token>`` at the first token that cannot continue the expression, with the
context Prometheus's grammar names (``in label matching, expected string``), and type
errors of function arguments (against the signatures in ``signatures``). Positions are
``line:column`` as Prometheus counts them (bytes, 1-based).
"""

from __future__ import annotations

import math

from sidecar.rules.promql.lexer import WORD_OPS, ParseFailure, Tok, TokenCursor, lex
from sidecar.rules.promql.signatures import check_call

__all__ = ["explain", "explain_metric", "position"]

_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
_PRECEDENCE = {
    "or": 1, "and": 2, "unless": 2, "==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3,
    "+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "atan2": 5, "^": 6,
}  # fmt: skip


def _number(text: str) -> float:
    # Prometheus's parser.number: Inf and NaN in any case, hex, octal, decimal.
    low = text.lower()
    if low in ("inf", "nan"):
        return float(low)
    try:
        return float(int(text, 16)) if low.startswith("0x") else float(text)
    except ValueError:
        return 0.0  # the lexer accepted it; Go reads it too


def _check_at(ts: float, start: int) -> None:
    if math.isinf(ts) or math.isnan(ts) or not -(2.0**63) < ts < 2.0**63:
        shown = (
            ("+Inf" if ts > 0 else "-Inf")
            if math.isinf(ts)
            else ("NaN" if math.isnan(ts) else f"{ts:f}")
        )
        raise ParseFailure(start, f"timestamp out of bounds for @ modifier: {shown}")


class _Parser(TokenCursor):
    def unexpected(self, context: str = "", expected: str = "") -> ParseFailure:
        tok = self.peek()
        msg = "unexpected " + tok.desc()
        if context:
            msg += " in " + context
        if expected:
            msg += ", expected " + expected
        return ParseFailure(tok.pos, msg)

    def is_punct(self, val: str) -> bool:
        tok = self.peek()
        return tok.kind == "PUNCT" and tok.val == val

    def expect(self, val: str, context: str = "", expected: str = "") -> None:
        if not self.is_punct(val):
            raise self.unexpected(context, expected)
        self.take()

    def top(self) -> str:
        if self.peek().kind == "EOF":
            raise ParseFailure(0, "no expression found in input")
        kind = self.expr(0)
        if self.peek().kind != "EOF":
            raise self.unexpected()
        return kind

    def expr(self, min_prec: int) -> str:
        start = self.peek().pos
        kind = self.unary()
        while True:
            tok = self.peek()
            prec = _PRECEDENCE.get(tok.val, 0) if tok.kind == "OP" else 0
            if prec == 0 or prec < min_prec:
                return kind
            self.take()
            if self.peek().kind == "KEYWORD" and self.peek().val == "bool":
                self.take()
            if self.peek().kind == "KEYWORD" and self.peek().val in ("on", "ignoring"):
                self.take()
                self.labels()
            if self.peek().kind == "KEYWORD" and self.peek().val in ("group_left", "group_right"):
                self.take()
                if self.is_punct("("):
                    self.labels()
            rhs = self.expr(prec if tok.val == "^" else prec + 1)
            if {kind, rhs} & {"range vector", "string"}:
                raise ParseFailure(
                    start, "binary expression must contain only scalar and instant vector types"
                )
            kind = "scalar" if kind == rhs == "scalar" else "instant vector"

    def labels(self) -> None:
        self.expect("(", "grouping opts", '"("')
        while not self.is_punct(")"):
            if self.peek().kind not in ("IDENT", "KEYWORD", "AGGR", "OP") or (
                self.peek().kind == "OP" and self.peek().val not in WORD_OPS
            ):
                raise self.unexpected("grouping opts", "label")
            self.take()
            if self.is_punct(","):
                self.take()
            elif not self.is_punct(")"):
                raise self.unexpected("grouping opts", '"," or ")"')
        self.take()

    def unary(self) -> str:
        tok = self.peek()
        if tok.kind == "OP" and tok.val in ("+", "-"):
            self.take()
            kind = self.unary()
            if kind not in ("scalar", "instant vector"):
                raise ParseFailure(
                    tok.pos,
                    "unary expression only allowed on expressions of type scalar or instant "
                    f'vector, got "{kind}"',
                )
            return kind
        start = tok.pos
        return self.postfix(self.primary(), start)

    def postfix(self, kind: str, start: int) -> str:
        while True:
            tok = self.peek()
            if tok.kind == "PUNCT" and tok.val == "[":
                self.take()
                self.take()  # the lexer made sure of a duration
                if self.is_punct(":"):
                    self.take()
                    if self.peek().kind == "DURATION":
                        self.take()
                        self.expect("]", "subquery selector", '"]"')
                    else:
                        self.expect("]", "subquery selector", 'duration or "]"')
                else:
                    self.expect("]", "subquery or range", '":" or "]"')
                kind = "range vector"
            elif tok.kind == "KEYWORD" and tok.val == "offset":
                self.take()
                if self.peek().kind == "OP" and self.peek().val == "-":
                    self.take()
                if self.peek().kind != "DURATION":
                    raise self.unexpected("offset", "duration")
                self.take()
            elif tok.kind == "PUNCT" and tok.val == "@":
                self.take()
                sign = 1.0
                if self.peek().kind == "OP" and self.peek().val in ("+", "-"):
                    sign = -1.0 if self.take().val == "-" else 1.0
                nxt = self.peek()
                if nxt.kind == "NUMBER":
                    self.take()
                    _check_at(sign * _number(nxt.val), start)
                elif nxt.kind == "KEYWORD" and nxt.val in ("start", "end"):
                    self.take()
                    self.expect("(", "@", "timestamp")
                    self.expect(")", "@", "timestamp")
                else:
                    raise self.unexpected("@", "timestamp")
            else:
                return kind

    def primary(self) -> str:
        tok = self.peek()
        if tok.kind == "NUMBER":
            self.take()
            return "scalar"
        if tok.kind == "STRING":
            self.take()
            return "string"
        if tok.kind == "PUNCT" and tok.val == "(":
            self.take()
            kind = self.expr(0)
            self.expect(")")
            return kind
        if tok.kind == "PUNCT" and tok.val == "{":
            self.matchers()
            return "instant vector"
        nxt = self.toks[self.i + 1] if self.i + 1 < len(self.toks) else tok
        if tok.kind == "AGGR" and (nxt.val == "(" or nxt.val in ("by", "without")):
            return self.aggregation()
        # Aggregation names and some keywords are metric names where a selector can stand.
        if (
            tok.kind in ("IDENT", "METRIC", "AGGR")
            or (tok.kind == "KEYWORD" and tok.val in ("by", "without", "offset", "start", "end"))
            or (tok.kind == "OP" and tok.val in ("and", "or", "unless"))
        ):
            self.take()
            if self.is_punct("(") and tok.kind == "IDENT":
                return self.call(tok)
            if self.is_punct("{"):
                self.matchers()
            return "instant vector"
        raise self.unexpected()

    def call(self, name: Tok) -> str:
        self.take()
        kinds: list[tuple[int, str]] = []
        while not self.is_punct(")"):
            pos = self.peek().pos
            kinds.append((pos, self.expr(0)))
            if self.is_punct(","):
                comma = self.take()
                if self.is_punct(")"):
                    raise ParseFailure(
                        comma.pos, "trailing commas not allowed in function call args"
                    )
            elif not self.is_punct(")"):
                raise self.unexpected()
        self.take()
        return check_call(name, kinds)

    def aggregation(self) -> str:
        op = self.take()
        if self.peek().kind == "KEYWORD" and self.peek().val in ("by", "without"):
            self.take()
            self.labels()
        if not self.is_punct("("):
            raise self.unexpected("aggregation")
        self.take()
        args = [(self.peek().pos, self.expr(0))]
        while self.is_punct(","):
            self.take()
            args.append((self.peek().pos, self.expr(0)))
        if not self.is_punct(")"):
            raise self.unexpected("aggregation")
        self.take()
        want = 2 if op.val.lower() in ("topk", "bottomk", "quantile", "count_values") else 1
        if len(args) != want:
            raise ParseFailure(
                op.pos,
                "wrong number of arguments for aggregate expression provided, "
                f"expected {want}, got {len(args)}",
            )
        if want == 2:
            pos, kind = args[0]
            need = "string" if op.val.lower() == "count_values" else "scalar"
            if kind != need:
                raise ParseFailure(
                    pos, f"expected type {need} in aggregation parameter, got {kind}"
                )
        pos, kind = args[-1]
        if kind != "instant vector":
            raise ParseFailure(
                pos, f"expected type instant vector in aggregation expression, got {kind}"
            )
        if self.peek().kind == "KEYWORD" and self.peek().val in ("by", "without"):
            self.take()
            self.labels()
        return "instant vector"

    def matchers(self) -> None:
        self.take()
        while not self.is_punct("}"):
            if self.peek().kind != "IDENT":
                raise self.unexpected("label matching", 'identifier or "}"')
            self.take()
            if self.peek().kind != "OP" or self.peek().val not in ("=", "!=", "=~", "!~"):
                raise self.unexpected("label matching", "label matching operator")
            self.take()
            if self.peek().kind != "STRING":
                raise self.unexpected("label matching", "string")
            self.take()
            if self.is_punct(","):
                self.take()
            elif not self.is_punct("}"):
                raise self.unexpected("label matching", '"," or "}"')
        self.take()


class _MetricParser(_Parser):
    """``ParseMetric``'s grammar: an optional metric name, an optional label set."""

    def metric(self) -> None:
        tok = self.peek()
        if tok.kind in ("IDENT", "METRIC", "AGGR", "KEYWORD") or tok.val in WORD_OPS:
            self.take()
        if self.is_punct("{"):
            self.take()
            while not self.is_punct("}"):
                if self.peek().kind != "IDENT":
                    raise self.unexpected("label set", 'identifier or "}"')
                self.take()
                if self.peek().val != "=":
                    raise self.unexpected("label set", '"="')
                self.take()
                if self.peek().kind != "STRING":
                    raise self.unexpected("label set", "string")
                self.take()
                if self.is_punct(","):
                    self.take()
                elif not self.is_punct("}"):
                    raise self.unexpected("label set", '"," or "}"')
            self.take()


def explain_metric(text: str) -> str | None:
    """Prometheus's error for the metric part (name and label set) of a series
    description or of ``exp_samples`` labels, or None if that part parses."""
    try:
        parser = _MetricParser(lex(text))
        parser.metric()
        if parser.peek().kind != "EOF":
            raise parser.unexpected()
    except ParseFailure as exc:
        return f"{position(text, exc.pos)} parse error: {exc.message}"
    return None


def position(text: str, pos: int, line_offset: int = 0) -> str:
    """Prometheus's ``LINE:COL:`` for byte offset ``pos`` of ``text``."""
    data = text.encode()
    before = data[: len(text[:pos].encode())]
    line = line_offset + 1 + before.count(b"\n")
    col = len(before) - before.rfind(b"\n")
    return f"{line}:{col}:"


def explain(text: str) -> str | None:
    """``LINE:COL: parse error: MESSAGE`` as Prometheus 2.42 reports ``text``'s first syntax
    error, or None when Prometheus's grammar accepts it (the refusal is then elsewhere)."""
    try:
        _Parser(lex(text)).top()
    except ParseFailure as exc:
        return f"{position(text, exc.pos)} parse error: {exc.message}"
    except RecursionError:
        return None  # too deep to explain: the caller keeps its own message
    return None
