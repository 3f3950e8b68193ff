"""Parser for the Go ``text/template`` subset alert rules use (tokens from ``template_lex``).

Prometheus expands alert labels and annotations with Go's ``text/template``; this
module reads the same syntax into a small tree: text, actions with pipelines
(``{{ $value | humanize }}``), variables and fields (``$labels.job``, ``.Value``),
string/number/bool literals, parentheses, ``if``/``else if``/``else``/``with``/
``range``/``end``, ``{{-``/``-}}`` trimming and comments. Like Go's parser it rejects an
undefined variable or function, an unexpected ``{{end}}``, a missing ``{{end}}``; and it
rejects, at load time, what the embedded engine does not do (``define``, ``template``,
``block``, ``break``, ``continue``). Errors read as Go's: ``template: NAME:LINE: msg``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from sidecar.core.errors import RuleError
from sidecar.rules.templates.lex import Item, TemplateSyntaxError, lex

__all__ = [
    "Action",
    "Arg",
    "Branch",
    "Cmd",
    "Const",
    "Field",
    "Func",
    "Node",
    "Pipe",
    "Sub",
    "Text",
    "Var",
    "parse_template",
]


@dataclass(frozen=True, slots=True)
class Field:
    """``.A.B`` on the current dot; ``names == ()`` is the dot itself."""

    names: tuple[str, ...]
    pos: int = 0
    src: str = ""


@dataclass(frozen=True, slots=True)
class Var:
    """``$name.A.B``."""

    name: str
    names: tuple[str, ...]
    pos: int = 0
    src: str = ""


@dataclass(frozen=True, slots=True)
class Const:
    """A literal: string, int, float, bool or nil."""

    value: str | int | float | bool | None
    pos: int = 0
    src: str = ""


@dataclass(frozen=True, slots=True)
class Func:
    """A function name in the first position of a command."""

    name: str
    pos: int = 0
    src: str = ""


@dataclass(frozen=True, slots=True)
class Sub:
    """A parenthesized pipeline."""

    pipe: Pipe
    pos: int = 0
    src: str = ""


Arg = Field | Var | Const | Func | Sub


@dataclass(frozen=True, slots=True)
class Cmd:
    """One stage of a pipeline: an operand, or a function and its arguments."""

    args: tuple[Arg, ...]
    pos: int = 0
    src: str = ""


@dataclass(frozen=True, slots=True)
class Pipe:
    """``$a, $b := cmd | cmd``; ``assign`` for ``=`` rather than ``:=``."""

    decl: tuple[str, ...]
    assign: bool
    cmds: tuple[Cmd, ...]


@dataclass(frozen=True, slots=True)
class Text:
    """Literal text between actions."""

    text: str


@dataclass(frozen=True, slots=True)
class Action:
    """``{{ pipeline }}``: its value is printed unless it declares a variable."""

    pipe: Pipe


@dataclass(frozen=True, slots=True)
class Branch:
    """``if``/``with``/``range`` with its body and ``else`` body."""

    kind: Literal["if", "with", "range"]
    pipe: Pipe
    body: tuple[Node, ...]
    orelse: tuple[Node, ...]


Node = Text | Action | Branch

_UNSUPPORTED = frozenset({"define", "template", "block", "break", "continue"})


class _Parser:
    def __init__(
        self,
        items: list[Item],
        funcs: Collection[str],
        unsupported: Collection[str],
        variables: Collection[str],
    ) -> None:
        self.items = items
        self.i = 0
        self.funcs = funcs
        self.unsupported = unsupported
        self.vars = ["$", *variables]

    def _peek(self) -> Item:
        while self.items[self.i][0] == "space":
            self.i += 1
        return self.items[self.i]

    def _next(self) -> Item:
        item = self._peek()
        self.i += 1
        return item

    def _expect_right(self, context: str) -> None:
        kind, value, line = self._next()[:3]
        if kind != "right":
            raise TemplateSyntaxError(line, f"unexpected {_show(kind, value)} in {context}")

    def parse(self) -> tuple[Node, ...]:
        nodes, stop = self._list()
        if stop != "eof":
            raise TemplateSyntaxError(self.items[self.i - 1][2], f"unexpected {{{{{stop}}}}}")
        return nodes

    def _list(self) -> tuple[tuple[Node, ...], str]:
        nodes: list[Node] = []
        while True:
            kind, value, line = self.items[self.i][:3]
            self.i += 1
            if kind == "eof":
                return tuple(nodes), "eof"
            if kind == "text":
                nodes.append(Text(str(value)))
                continue
            kind, value, line = self._peek()[:3]
            if kind == "keyword":
                self.i += 1
                if value == "end":
                    self._expect_right("end")
                    return tuple(nodes), "end"
                if value == "else":
                    return tuple(nodes), "else"
                if value in _UNSUPPORTED:
                    raise TemplateSyntaxError(
                        line, f"{{{{{value}}}}} is not supported by the embedded engine"
                    )
                nodes.append(self._branch(str(value), line))
                continue
            if kind == "nil":
                raise TemplateSyntaxError(line, "nil is not a command")
            pipe = self._pipe("command", line)
            nodes.append(Action(pipe))

    def _branch(self, kind: str, line: int) -> Branch:
        depth = len(self.vars)
        pipe = self._pipe(kind, line)
        body, stop = self._list()
        orelse: tuple[Node, ...] = ()
        if stop == "eof":
            raise TemplateSyntaxError(self.items[self.i - 1][2], "unexpected EOF")
        if stop == "else":
            del self.vars[depth + len(pipe.decl) :]
            nkind, nvalue, nline = self._peek()[:3]
            if nkind == "keyword" and nvalue in ("if", "with") and kind != "range":
                # {{else if x}} is {{else}}{{if x}}...{{end}}{{end}} sharing one {{end}}.
                self.i += 1
                orelse = (self._branch(str(nvalue), nline),)
            else:
                self._expect_right("else")
                orelse, stop = self._list()
                if stop != "end":
                    raise TemplateSyntaxError(
                        self.items[self.i - 1][2], f"expected end; found {stop}"
                    )
        del self.vars[depth:]
        branch_kind: Literal["if", "with", "range"] = (
            "if" if kind == "if" else "with" if kind == "with" else "range"
        )
        return Branch(branch_kind, pipe, body, orelse)

    def _pipe(self, context: str, line: int, end: str = "right") -> Pipe:
        decl: list[str] = []
        assign = False
        start = self.i
        names: list[str] = []
        while self._peek()[0] == "var":
            names.append(str(self._next()[1]))
            if self._peek()[0] == "," and context == "range" and len(names) == 1:
                self.i += 1
                continue
            break
        kind = self._peek()[0]
        if names and kind in ("declare", "assign"):
            self.i += 1
            assign = kind == "assign"
            for name in names:
                if assign and name not in self.vars:
                    raise TemplateSyntaxError(line, f'undefined variable "{name}"')
            decl = names
        else:
            self.i = start
        cmds: list[Cmd] = []
        while True:
            cmd = self._cmd(line)
            kind, value, iline = self._next()[:3]
            if not cmd.args:
                raise TemplateSyntaxError(iline, f"missing value for {context}")
            if cmds and isinstance(cmd.args[0], Const):
                raise TemplateSyntaxError(
                    iline, f"non executable command in pipeline stage {len(cmds) + 1}"
                )
            cmds.append(cmd)
            if kind == "|":
                if self._peek()[0] == end:
                    # Go's parser takes a trailing "|" before the delimiter as no stage.
                    self.i += 1
                    break
                continue
            if kind != end:
                if end == ")" and kind == "right":
                    raise TemplateSyntaxError(iline, "unclosed left paren")
                raise TemplateSyntaxError(iline, f"unexpected {_show(kind, value)} in {context}")
            break
        if not assign:
            self.vars.extend(decl)
        return Pipe(tuple(decl), assign, tuple(cmds))

    def _cmd(self, line: int) -> Cmd:
        args: list[Arg] = []
        pos = self._peek().pos
        while True:
            item = self._peek()
            if item.kind in ("right", "|", ")", "eof"):
                return Cmd(tuple(args), pos, " ".join(a.src for a in args))
            self.i += 1
            args.append(self._operand(item))

    def _chain(self) -> tuple[tuple[str, ...], str]:
        names: list[str] = []
        src = ""
        while self.items[self.i].kind == "field":
            names.append(str(self.items[self.i].value))
            src += self.items[self.i].src
            self.i += 1
        return tuple(names), src

    def _operand(self, item: Item) -> Arg:
        kind, value, line, pos, src = item
        if kind == "field":
            names, more = self._chain()
            return Field((str(value), *names), pos, src + more)
        if kind == "dot":
            return Field((), pos, src)
        if kind == "var":
            name = str(value)
            if name not in self.vars:
                raise TemplateSyntaxError(line, f'undefined variable "{name}"')
            names, more = self._chain()
            return Var(name, names, pos, src + more)
        if kind in ("string", "number", "bool"):
            assert isinstance(value, str | int | float | bool)
            return Const(value, pos, src)
        if kind == "nil":
            return Const(None, pos, src)
        if kind == "ident":
            name = str(value)
            if name in self.unsupported:
                raise TemplateSyntaxError(
                    line, f'function "{name}" is not supported by the embedded engine'
                )
            if name not in self.funcs:
                raise TemplateSyntaxError(line, f'function "{name}" not defined')
            return Func(name, pos, src)
        if kind == "(":
            pipe = self._pipe("parenthesized pipeline", line, end=")")
            if self.items[self.i].kind == "field":
                raise TemplateSyntaxError(
                    line, "field access on a parenthesized pipeline is not supported"
                )
            decl = ", ".join(pipe.decl) + (" := " if pipe.decl else "")
            return Sub(pipe, pos, "(" + decl + " | ".join(c.src for c in pipe.cmds) + ")")
        if kind == "eof":
            raise TemplateSyntaxError(line, "unclosed action")
        raise TemplateSyntaxError(line, f"unexpected {_show(kind, value)} in operand")


def _show(kind: str, value: object) -> str:
    if kind == "right":
        return '"}}"'
    if kind in ("keyword", "ident"):
        return f"<{value}>"
    if kind == "eof":
        return "EOF"
    if value is None:
        return f'"{kind}"'
    return repr(value)


def parse_template(
    text: str,
    name: str,
    funcs: Collection[str],
    unsupported: Collection[str],
    variables: Collection[str],
) -> tuple[Node, ...]:
    """Parse ``text``; raise ``RuleError("template: NAME:LINE: problem")`` like Go's parser.

    ``funcs`` are the callable names, ``unsupported`` names Go knows but the embedded
    engine does not run, ``variables`` the ones defined before the text (``$labels``...).
    """
    try:
        items = lex(text)
        return _Parser(items, funcs, unsupported, variables).parse()
    except TemplateSyntaxError as exc:
        raise RuleError(f"template: {name}:{exc.line}: {exc.message}") from None
