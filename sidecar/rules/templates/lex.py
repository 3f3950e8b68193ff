"""Lexer for the Go ``text/template`` subset of alert templates (see ``template_parse``).

It splits a template into text and action tokens as Go's ``text/template/parse`` lexer
does: ``{{``/``}}`` delimiters with ``{{-``/``-}}`` trimming the whitespace next to them,
``{{/* comments */}}``, and inside actions: fields, variables, identifiers, keywords,
Go-quoted strings and raw strings, character constants and Go number literals. Each
token keeps its offset and source text, for Go's error positions and contexts.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from sidecar.gocompat.gofmt import go_unquote

__all__ = ["KEYWORDS", "Item", "TemplateSyntaxError", "lex"]

KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
)
_NUMBER = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9]+)?"
    r"|0[bB][01_]+|0[oO][0-7_]+|[0-9_]*\.?[0-9_]*(?:[eE][+-]?[0-9]+)?)"
)
_SPACE = " \t\r\n"


class Item(NamedTuple):
    """One token: kind, decoded value, line, offset in the text, source text."""

    kind: str
    value: object
    line: int
    pos: int
    src: str


class TemplateSyntaxError(Exception):
    """A template does not parse; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(message)


def _unquote(body: str, quote: str, line: int) -> str:
    try:
        return go_unquote(body, quote)
    except ValueError:
        # strconv.ErrSyntax's text, which is all Go's template parser reports.
        raise TemplateSyntaxError(line, "invalid syntax") from None


def _trim_marker(text: str, i: int) -> bool:
    """``-`` and a space at ``i``, right after ``{{``: trim the whitespace before it."""
    return text.startswith("-", i) and i + 1 < len(text) and text[i + 1] in _SPACE


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.items: list[Item] = []

    def _emit(self, kind: str, value: object = None, end: int | None = None) -> None:
        src = self.text[self.pos : end] if end is not None else ""
        self.items.append(Item(kind, value, self.line, self.pos, src))

    def _advance(self, to: int) -> None:
        self.line += self.text.count("\n", self.pos, to)
        self.pos = to

    def run(self) -> list[Item]:
        text = self.text
        while self.pos < len(text):
            start = text.find("{{", self.pos)
            end = len(text) if start < 0 else start
            chunk = text[self.pos : end]
            if start >= 0 and _trim_marker(text, start + 2):
                chunk = chunk.rstrip(_SPACE)
            if chunk:
                self._emit("text", chunk)
            self._advance(end)
            if start < 0:
                break
            self._action()
        self._emit("eof")
        return self.items

    def _action(self) -> None:
        text = self.text
        i = self.pos + 2
        if _trim_marker(text, i):
            i += 2
        j = i
        while j < len(text) and text[j] in _SPACE:
            j += 1
        if text.startswith("/*", j):
            close = text.find("*/", j + 2)
            if close < 0:
                raise TemplateSyntaxError(self.line, "unclosed comment")
            k = close + 2
            trim = False
            if text.startswith(" -}}", k) or (
                text[k : k + 1] in _SPACE and text.startswith("-}}", k + 1)
            ):
                trim, k = True, k + 4
            elif text.startswith("}}", k):
                k += 2
            else:
                raise TemplateSyntaxError(self.line, "comment ends before closing delimiter")
            self._advance(k)
            self._after_right(trim)
            return
        self._advance(i)
        self._emit("left")
        self._inside()

    def _after_right(self, trim: bool) -> None:
        if trim:
            k = self.pos
            while k < len(self.text) and self.text[k] in _SPACE:
                k += 1
            self._advance(k)

    def _inside(self) -> None:
        text = self.text
        while True:
            i = self.pos
            if i >= len(text):
                raise TemplateSyntaxError(self.line, "unclosed action")
            ch = text[i]
            if text.startswith("}}", i):
                self._advance(i + 2)
                self._emit("right")
                return
            if ch in _SPACE:
                j = i
                while j < len(text) and text[j] in _SPACE:
                    j += 1
                if text.startswith("-}}", j):
                    self._advance(j + 3)
                    self._emit("right")
                    self._after_right(True)
                    return
                self._advance(j)
                self._emit("space")
            elif ch in "|(),":
                self._emit(ch)
                self._advance(i + 1)
            elif text.startswith(":=", i):
                self._emit("declare")
                self._advance(i + 2)
            elif ch == "=":
                self._emit("assign")
                self._advance(i + 1)
            elif ch in "\"'`":
                self._quoted(ch)
            elif ch == "$":
                j = self._word(i + 1)
                self._emit("var", text[i:j], j)
                self._advance(j)
            elif ch == "." and i + 1 < len(text) and (text[i + 1].isalpha() or text[i + 1] == "_"):
                j = self._word(i + 1)
                self._emit("field", text[i + 1 : j], j)
                self._advance(j)
            elif ch.isdigit() or (ch in "+-." and i + 1 < len(text) and text[i + 1].isdigit()):
                self._number(i)
            elif ch == ".":
                self._emit("dot", None, i + 1)
                self._advance(i + 1)
            elif ch.isalpha() or ch == "_":
                j = self._word(i)
                word = text[i:j]
                if word in ("true", "false"):
                    self._emit("bool", word == "true", j)
                elif word == "nil":
                    self._emit("nil", None, j)
                else:
                    self._emit("keyword" if word in KEYWORDS else "ident", word, j)
                self._advance(j)
            else:
                raise TemplateSyntaxError(self.line, f"unrecognized character in action: {ch!r}")

    def _word(self, j: int) -> int:
        while j < len(self.text) and (self.text[j].isalnum() or self.text[j] == "_"):
            j += 1
        return j

    def _number(self, i: int) -> None:
        m = _NUMBER.match(self.text, i)
        assert m is not None
        j = m.end()
        word = self.text[i:j]
        if j < len(self.text) and (self.text[j].isalnum() or self.text[j] == "_"):
            raise TemplateSyntaxError(
                self.line, f"bad number syntax: {self.text[i : self._word(j)]!r}"
            )
        value: int | float
        try:
            hexint = word.lstrip("+-")[:2] in ("0x", "0X") and not any(c in word for c in ".pP")
            if any(c in word for c in ".eEpP") and not hexint:
                value = float.fromhex(word) if "0x" in word.lower() else float(word)
            else:
                value = int(word, 0) if not re.fullmatch(r"[+-]?0[0-7_]+", word) else int(word, 8)
        except ValueError:
            raise TemplateSyntaxError(self.line, f"bad number syntax: {word!r}") from None
        self._emit("number", value, j)
        self._advance(j)

    def _quoted(self, quote: str) -> None:
        text = self.text
        i = self.pos + 1
        j = i
        while True:
            if j >= len(text) or (quote != "`" and text[j] == "\n"):
                what = {
                    "'": "unterminated character constant",
                    "`": "unterminated raw quoted string",
                }
                raise TemplateSyntaxError(self.line, what.get(quote, "unterminated quoted string"))
            if text[j] == "\\" and quote != "`":
                j += 2
                continue
            if text[j] == quote:
                break
            j += 1
        body = text[i:j]
        if quote == "`":
            self._emit("string", body, j + 1)
        elif quote == '"':
            self._emit("string", _unquote(body, quote, self.line), j + 1)
        else:
            value = _unquote(body, quote, self.line)
            if len(value) != 1:
                raise TemplateSyntaxError(self.line, f"malformed character constant: '{body}'")
            self._emit("number", ord(value), j + 1)
        self._advance(j + 1)


def lex(text: str) -> list[Item]:
    """Tokens of ``text``, ending with an ``eof`` item; raises ``TemplateSyntaxError``."""
    return _Lexer(text).run()
