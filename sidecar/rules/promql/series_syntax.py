"""promtool's words and position for a bad ``input_series`` entry.

promtool joins a test's ``series`` and ``values`` into one line (``up{job="a"} 1+2x3``,
trimmed) and parses it with Prometheus's series-description grammar: the metric part as
``ParseMetric`` does (see ``syntax_errors``), then the values, lexed by Go's
``lexValueSequence`` (spaces, ``+``, ``-``, ``x``, ``_``, numbers, identifiers) and
parsed as ``series_values``. The first problem is reported as Prometheus reports it:
``1:17: parse error: unexpected "x"`` where a whole item has been read (no context),
``... in series values`` inside an item, and Prometheus's own texts for a bad number,
a bad repetition count or an identifier other than ``stale``. Prometheus puts every such
error on line 1 (promtool's loader does not set the line).
"""

from __future__ import annotations

import re

from sidecar.gocompat.gofmt import go_quote
from sidecar.rules.promql.histograms import go_parse_float
from sidecar.rules.promql.lexer import (
    ParseFailure,
    Tok,
    TokenCursor,
    go_rune,
    is_alnum,
    is_alpha,
    is_digit,
)
from sidecar.rules.promql.syntax_errors import explain_metric, position

__all__ = ["explain_series"]

_SPACE = " \t\n\r"
_NUMBER = re.compile(r"[0-9]*(?:\.[0-9]*)?(?:[eE][+-]?[0-9]*)?", re.ASCII)
_WORD = re.compile(r"[A-Za-z0-9_:]+", re.ASCII)
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*", re.ASCII)
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|`[^`]*`')
_UINT = re.compile(r"[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_NAMED = {"inf": "NUMBER", "nan": "NUMBER"}


def _metric_end(text: str) -> int:
    """Where the metric part ends: after the name, and after its ``{...}`` if the brace
    follows the name at once (else Go's lexer is already reading values)."""
    m = _NAME.match(text)
    i = m.end() if m else 0
    if not text.startswith("{", i):
        return i
    i += 1
    while i < len(text):
        if text[i] == "}":
            return i + 1
        s = _STRING.match(text, i)
        i = s.end() if s else i + 1
    return i


def _lex_values(text: str, i: int) -> list[Tok]:
    """Go's ``lexValueSequence`` from ``i``: the tokens, ending in EOF or in an ERROR
    token where Go's lexer stops."""
    toks: list[Tok] = []
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in _SPACE:
            start = i
            while i < n and text[i] in _SPACE:
                i += 1
            toks.append(Tok("SPACE", " ", start))
        elif ch in "+-":
            toks.append(Tok("OP", ch, i))
            i += 1
        elif ch in "x_":
            toks.append(Tok("PUNCT", ch, i))
            i += 1
        elif is_digit(ch) or (ch == "." and is_digit(text[i + 1 : i + 2])):
            m = _NUMBER.match(text, i)
            assert m is not None
            nxt = text[m.end() : m.end() + 1]
            if nxt and nxt != "x" and is_alnum(nxt):
                toks.append(Tok("ERROR", f"bad number syntax: {go_quote(m.group())}", i))
                return toks
            toks.append(Tok("NUMBER", m.group(), i))
            i = m.end()
        elif is_alpha(ch):
            m = _WORD.match(text, i)
            assert m is not None
            toks.append(Tok(_NAMED.get(m.group().lower(), "IDENT"), m.group(), i))
            i = m.end()
        else:
            message = f"unexpected character in series sequence: {go_rune(ch)}"
            toks.append(Tok("ERROR", message, i))
            return toks
    toks.append(Tok("EOF", "", n))
    return toks


def _desc(tok: Tok) -> str:
    if tok.kind == "PUNCT":
        return f'"{tok.val}"'
    return tok.desc()


class _Values(TokenCursor):
    def fail(self, inside: bool) -> ParseFailure:
        # Inside an item the grammar's error rule names the context; between items the
        # parser reports the bare token.
        tok = self.peek()
        where = " in series values" if inside else ""
        return ParseFailure(tok.pos, f"unexpected {_desc(tok)}{where}")

    def number(self) -> None:
        tok = self.peek()
        if tok.kind != "NUMBER":
            raise self.fail(inside=True)
        self.take()
        text = tok.val
        if text.lower() in ("inf", "nan") or _DECIMAL.fullmatch(text):
            if go_parse_float(text.lstrip("+")) is not None or text.lower() in ("inf", "nan"):
                return
            why = "value out of range"
        else:
            why = "invalid syntax"
        raise ParseFailure(
            tok.pos, f'error parsing number: strconv.ParseFloat: parsing "{text}": {why}'
        )

    def repetitions(self) -> None:
        tok = self.peek()
        if tok.kind != "NUMBER":
            raise self.fail(inside=True)
        self.take()
        if not _UINT.fullmatch(tok.val):
            raise ParseFailure(
                tok.pos,
                "invalid repetition in series values: strconv.ParseUint: "
                f'parsing "{tok.val}": invalid syntax',
            )
        if int(tok.val) >= 1 << 64:
            raise ParseFailure(
                tok.pos,
                "invalid repetition in series values: strconv.ParseUint: "
                f'parsing "{tok.val}": value out of range',
            )

    def item(self) -> None:
        tok = self.peek()
        if tok.val == "_" and tok.kind == "PUNCT":
            self.take()
            if self.peek().val == "x" and self.peek().kind == "PUNCT":
                self.take()
                self.repetitions()
            return
        if tok.kind == "IDENT":
            if tok.val != "stale":
                raise ParseFailure(
                    tok.pos,
                    f'unexpected {tok.desc()} in series values, expected number or "stale"',
                )
            self.take()
        elif tok.kind == "OP":
            self.take()
            self.number()
        elif tok.kind == "NUMBER":
            self.number()
        else:
            raise self.fail(inside=False)
        nxt = self.peek()
        if nxt.kind == "PUNCT" and nxt.val == "x":
            self.take()
            self.repetitions()
        elif nxt.kind == "OP":
            self.take()
            self.number()
            if not (self.peek().kind == "PUNCT" and self.peek().val == "x"):
                raise self.fail(inside=True)
            self.take()
            self.repetitions()

    def values(self) -> None:
        while True:
            tok = self.peek()
            if tok.kind == "EOF":
                return
            if tok.kind != "SPACE":
                raise self.fail(inside=False)
            self.take()
            if self.peek().kind in ("EOF", "SPACE"):
                continue
            self.item()


def explain_series(series: str, values: str) -> str | None:
    """``1:COL: parse error: MESSAGE`` for the first problem promtool finds in one
    ``input_series`` entry, or None when Prometheus's grammar accepts it."""
    line = (series + " " + values).strip()
    end = _metric_end(line)
    message = explain_metric(line[:end])
    if message is not None:
        return message
    try:
        _Values(_lex_values(line, end)).values()
    except ParseFailure as exc:
        return f"{position(line, exc.pos)} parse error: {exc.message}"
    return None
