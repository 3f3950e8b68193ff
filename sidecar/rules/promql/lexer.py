"""Prometheus 2.42's PromQL lexer, for its error messages (see ``syntax_errors``).

Tokens are kept with their byte offsets; where Go's lexer stops with an error, the token
list ends with an ERROR token carrying Go's message, which the parser reports only if it
gets that far (as Go's parser does). Token descriptions are Go's ``Item.desc()``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from sidecar.gocompat.gofmt import go_quote

__all__ = [
    "WORD_OPS",
    "ParseFailure",
    "Tok",
    "TokenCursor",
    "go_rune",
    "is_alnum",
    "is_alpha",
    "is_digit",
    "lex",
]

_OPS = {"+": "ADD", "-": "SUB", "*": "MUL", "/": "DIV", "%": "MOD", "^": "POW"}
WORD_OPS = frozenset({"and", "or", "unless", "atan2"})
_AGGREGATORS = frozenset(
    {"sum", "avg", "count", "min", "max", "group", "stddev", "stdvar", "topk", "bottomk",
     "count_values", "quantile"}
)  # fmt: skip
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "start",
     "end"}
)  # fmt: skip
_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII
)
_DURATION = re.compile(r"(?:[0-9]+(?:ms|[smhdwy]))+", re.ASCII)
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*", re.ASCII)
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_SPACE = " \t\n\r"


def is_alpha(ch: str) -> bool:
    """Go's lexer's ``isAlpha``: an ASCII letter or ``_`` (never a Unicode letter)."""
    return ch == "_" or ("a" <= ch <= "z") or ("A" <= ch <= "Z")


def is_digit(ch: str) -> bool:
    """An ASCII digit (``isDigit``)."""
    return len(ch) == 1 and "0" <= ch <= "9"


def is_alnum(ch: str) -> bool:
    """``isAlphaNumeric``."""
    return len(ch) == 1 and (is_alpha(ch) or is_digit(ch))


@dataclass(frozen=True, slots=True)
class Tok:
    kind: str  # NUMBER DURATION STRING IDENT METRIC KEYWORD AGGR OP PUNCT EOF
    val: str
    pos: int

    def desc(self) -> str:
        if self.kind == "EOF":
            return "end of input"
        if self.val == "@":
            return "<op:@>"  # AT is an operator token in Prometheus's grammar, EQL is not
        if self.kind == "PUNCT" or self.val == "=":
            return f'"{self.val}"'
        if self.kind == "OP":
            return f"<op:{self.val}>"
        if self.kind == "KEYWORD":
            return f"<{self.val}>"
        if self.kind == "AGGR":
            return f"<aggr:{self.val}>"
        name = {"IDENT": "identifier", "METRIC": "metric identifier", "NUMBER": "number",
                "STRING": "string", "DURATION": "duration"}[self.kind]  # fmt: skip
        shown = go_quote(self.val[:10]) + "..." if len(self.val) > 10 else go_quote(self.val)
        if self.kind in ("IDENT", "METRIC"):
            shown = go_quote(self.val)
        return f"{name} {shown}"


class ParseFailure(Exception):
    def __init__(self, pos: int, message: str) -> None:
        self.pos = pos
        self.message = message
        super().__init__(message)


class TokenCursor:
    """Reads a token list front to back; a lexer error token raises where it stands."""

    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self) -> Tok:
        tok = self.toks[self.i]
        if tok.kind == "ERROR":
            raise ParseFailure(tok.pos, tok.val)
        return tok

    def take(self) -> Tok:
        tok = self.peek()
        if tok.kind != "EOF":
            self.i += 1
        return tok


def go_rune(ch: str) -> str:
    """Go's ``%q`` of a rune."""
    if ch == "'":
        return "'\\''"
    body = go_quote(ch)[1:-1].replace('\\"', '"')
    return f"'{body}'"


def _string_end(text: str, i: int) -> int:
    quote = text[i]
    j = i + 1
    if quote == "`":
        end = text.find("`", j)
        if end < 0:
            raise ParseFailure(i, "unterminated raw string")
        return end + 1
    while j < len(text):
        ch = text[j]
        if ch == "\\":
            j += 2
            continue
        if ch == "\n":
            break
        if ch == quote:
            return j + 1
        j += 1
    raise ParseFailure(i, "unterminated quoted string")


def lex(text: str) -> list[Tok]:
    """Tokens up to the end, or up to an ERROR token where the lexer stops, as Go's lexer
    hands the parser an ERROR item only when the parser gets that far."""
    toks: list[Tok] = []
    try:
        _scan(text, toks)
    except ParseFailure as exc:
        toks.append(Tok("ERROR", exc.message, exc.pos))
    return toks


def _scan(text: str, toks: list[Tok]) -> None:  # one state machine, as Go's lexer

    i = 0
    depth = 0
    brace = bracket = colon = False
    n = len(text)
    while True:
        while i < n and text[i] in _SPACE:
            i += 1
        if i < n and text[i] == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if i >= n:
            if brace:
                raise ParseFailure(i, "unexpected end of input inside braces")
            if depth:
                raise ParseFailure(i, "unclosed left parenthesis")
            if bracket:
                raise ParseFailure(i, "unclosed left bracket")
            toks.append(Tok("EOF", "", i))
            return
        ch = text[i]
        if brace:
            if is_alpha(ch) or ch == "_":
                m = _LABEL.match(text, i)
                end = m.end() if m else i + 1
                toks.append(Tok("IDENT", text[i:end], i))
                i = end
            elif ch == ",":
                toks.append(Tok("PUNCT", ",", i))
                i += 1
            elif ch in "\"'`":
                end = _string_end(text, i)
                toks.append(Tok("STRING", text[i:end], i))
                i = end
            elif ch == "=":
                op = "=~" if text.startswith("=~", i) else "="
                toks.append(Tok("OP", op, i))
                i += len(op)
            elif ch == "!":
                nxt = text[i + 1 : i + 2]
                if nxt not in ("~", "="):
                    raise ParseFailure(
                        i, f"unexpected character after '!' inside braces: {go_rune(nxt)}"
                    )
                toks.append(Tok("OP", "!" + nxt, i))
                i += 2
            elif ch == "{":
                raise ParseFailure(i, "unexpected left brace '{'")
            elif ch == "}":
                toks.append(Tok("PUNCT", "}", i))
                brace = False
                i += 1
            else:
                raise ParseFailure(i, f"unexpected character inside braces: {go_rune(ch)}")
            continue
        if toks and toks[-1].val == "[" and toks[-1].kind == "PUNCT":
            m = _DURATION.match(text, i)
            nm = _NUMBER.match(text, i)
            if m is None or (m.end() < n and (is_alnum(text[m.end()]) or text[m.end()] == "_")):
                if nm and (nm.end() >= n or not is_alnum(text[nm.end()])):
                    raise ParseFailure(i, "missing unit character in duration")
                raise ParseFailure(i, f"bad duration syntax: {go_quote(nm.group() if nm else '')}")
            toks.append(Tok("DURATION", m.group(), i))
            i = m.end()
            continue
        two = text[i : i + 2]
        if ch == ",":
            toks.append(Tok("PUNCT", ",", i))
            i += 1
        elif ch in _OPS:
            toks.append(Tok("OP", ch, i))
            i += 1
        elif two in ("==", "!=", "<=", ">="):
            toks.append(Tok("OP", two, i))
            i += 2
        elif ch == "=":
            if two == "=~":
                raise ParseFailure(i, "unexpected character after '=': '~'")
            toks.append(Tok("PUNCT", "=", i))
            i += 1
        elif ch == "!":
            raise ParseFailure(i, f"unexpected character after '!': {go_rune(text[i + 1 : i + 2])}")
        elif ch in "<>":
            toks.append(Tok("OP", ch, i))
            i += 1
        elif is_digit(ch) or (ch == "." and is_digit(text[i + 1 : i + 2])):
            m = _DURATION.match(text, i)
            nm = _NUMBER.match(text, i)
            unit_ends = m is not None and not (
                m.end() < n and (is_alnum(text[m.end()]) or text[m.end()] == "_")
            )
            if m is not None and unit_ends and (nm is None or nm.end() < m.end()):
                toks.append(Tok("DURATION", m.group(), i))
                i = m.end()
                continue
            assert nm is not None
            end = nm.end()
            if end < n and (is_alnum(text[end]) or text[end] in "_"):
                raise ParseFailure(i, f"bad number or duration syntax: {go_quote(nm.group())}")
            toks.append(Tok("NUMBER", text[i:end], i))
            i = end
        elif ch in "\"'`":
            end = _string_end(text, i)
            toks.append(Tok("STRING", text[i:end], i))
            i = end
        elif is_alpha(ch) or ch in "_:":
            if bracket:
                if colon:
                    raise ParseFailure(i, f"unexpected colon {go_rune(ch)}")
                toks.append(Tok("PUNCT", ":", i))
                colon = True
                i += 1
                continue
            m = _IDENT.match(text, i)
            end = m.end() if m else i + 1
            word = text[i:end]
            low = word.lower()
            if low in ("inf", "nan"):
                kind = "NUMBER"
            elif low in WORD_OPS:
                kind, word = "OP", low
            elif low in _AGGREGATORS:
                kind = "AGGR"
            elif low in _KEYWORDS:
                kind = "KEYWORD"
            else:
                kind = "METRIC" if ":" in word else "IDENT"
            toks.append(Tok(kind, word, i))
            i = end
        elif ch == "(":
            toks.append(Tok("PUNCT", "(", i))
            depth += 1
            i += 1
        elif ch == ")":
            depth -= 1
            i += 1
            if depth < 0:
                # Go's lexer overwrites the ")" it just emitted with the error.
                raise ParseFailure(i, "unexpected right parenthesis ')'")
            toks.append(Tok("PUNCT", ")", i - 1))
        elif ch == "{":
            toks.append(Tok("PUNCT", "{", i))
            brace = True
            i += 1
        elif ch == "[":
            if bracket:
                raise ParseFailure(i, "unexpected left bracket '['")
            toks.append(Tok("PUNCT", "[", i))
            bracket, colon = True, False
            i += 1
        elif ch == "]":
            if not bracket:
                raise ParseFailure(i, "unexpected right bracket ']'")
            toks.append(Tok("PUNCT", "]", i))
            bracket = False
            i += 1
        elif ch == "@":
            toks.append(Tok("PUNCT", "@", i))
            i += 1
        else:
            raise ParseFailure(i, f"unexpected character: {go_rune(ch)}")


_AT_PLACEHOLDER_S = 10**10
"""Seconds of the first stand-in time for a negative ``@`` (year 2286: no data there)."""


def _go_number(text: str) -> float | None:
    # Prometheus's parser.number: strconv.ParseInt(text, 0, 64), else ParseFloat.
    try:
        if re.fullmatch(r"0[xX][0-9a-fA-F]+", text):
            return float(int(text, 16))
        if re.fullmatch(r"0[0-7]+", text):
            return float(int(text, 8))
        return float(text)
    except ValueError:
        return None


def _round_half_away(x: float) -> int:
    whole = math.trunc(x)
    if abs(x - whole) >= 0.5:
        whole += 1 if x > 0 else -1
    return int(whole)


def rewrite_negative_at(text: str) -> tuple[str, dict[int, int]]:
    """``text`` with each ``@ -N`` replaced by a stand-in positive time, and the map from
    each stand-in's milliseconds to ``-N`` in milliseconds (rounded as Prometheus's
    ``FromFloatSeconds``): promql-parser cannot hold a time before 1970."""
    toks = lex(text)
    out: list[str] = []
    times: dict[int, int] = {}
    pos = 0
    for k in range(len(toks) - 2):
        at, minus, num = toks[k], toks[k + 1], toks[k + 2]
        if not (at.val == "@" and minus.kind == "OP" and minus.val == "-"):
            continue
        if num.kind != "NUMBER":
            continue
        value = _go_number(num.val)
        if value is None or not math.isfinite(value):
            continue
        stand_in = _AT_PLACEHOLDER_S + len(times)
        times[stand_in * 1000] = _round_half_away(-value * 1000)
        out.append(text[pos : minus.pos])
        out.append(str(stand_in))
        pos = num.pos + len(num.val)
    out.append(text[pos:])
    return "".join(out), times
