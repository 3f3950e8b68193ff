"""Parser for the Go ``text/template`` subset alert rules use (tokens from ``template_lex``).

Prometheus expands alert labels and annotations with Go's ``text/template``; this
module reads the same syntax into a small tree: text, actions with pipelines
(``{{ $value | humanize }}``), variables and fields (``$labels.job``, ``.Value``),
string/number/bool literals, parentheses, ``if``/``else if``/``else``/``with``/
``range``/``end``, ``break``/``continue``, ``define``/``template``/``block`` (named
templates, kept apart from the main tree), ``{{-``/``-}}`` trimming and comments. Like
Go's parser it rejects an undefined variable or function, an unexpected ``{{end}}``, a
missing ``{{end}}``, ``{{break}}`` outside ``{{range}}``. Errors read as Go's:
``template: NAME:LINE: msg``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from sidecar.core.errors import RuleError
from sidecar.rules.templates.lex import Item, TemplateSyntaxError, lex
from sidecar.rules.templates.nodes import (
    Action,
    Arg,
    Branch,
    Cmd,
    Const,
    Field,
    Func,
    Invoke,
    Loop,
    Node,
    Parsed,
    Pipe,
    Sub,
    Text,
    Var,
)

__all__ = ["parse_template"]


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
        self.defines: dict[str, tuple[Node, ...]] = {}
        self.range_depth = 0
        self.top = True

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

    def parse(self) -> Parsed:
        nodes, stop = self._list()
        if stop != "eof":
            raise TemplateSyntaxError(self.items[self.i - 1][2], f"unexpected {{{{{stop}}}}}")
        return Parsed(nodes, self.defines)

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
                if value in ("break", "continue"):
                    if not self.range_depth:
                        raise TemplateSyntaxError(line, f"{{{{{value}}}}} outside {{{{range}}}}")
                    self._expect_right(str(value))
                    nodes.append(Loop("break" if value == "break" else "continue"))
                    continue
                if value == "define":
                    if not self.top:
                        raise TemplateSyntaxError(line, "unexpected <define> in command")
                    self._define(line)
                    continue
                if value in ("template", "block"):
                    nodes.append(self._invoke(str(value), line))
                    continue
                nodes.append(self._branch(str(value), line))
                continue
            if kind == "nil":
                raise TemplateSyntaxError(line, "nil is not a command")
            pipe = self._pipe("command", line)
            nodes.append(Action(pipe))

    def _name(self, context: str) -> str:
        kind, value, line = self._next()[:3]
        if kind != "string":
            raise TemplateSyntaxError(line, f"unexpected {_show(kind, value)} in {context} clause")
        return str(value)

    def _body(self, context: str) -> tuple[Node, ...]:
        # A named template is a tree of its own: only $ is defined in it.
        saved, top, ranges = self.vars, self.top, self.range_depth
        self.vars, self.top, self.range_depth = ["$"], False, 0
        body, stop = self._list()
        self.vars, self.top, self.range_depth = saved, top, ranges
        if stop != "end":
            raise TemplateSyntaxError(self.items[self.i - 1][2], f"unexpected {stop} in {context}")
        return body

    def _define(self, line: int) -> None:
        name = self._name("define")
        self._expect_right("define clause")
        self.defines[name] = self._body("define")

    def _invoke(self, kind: str, line: int) -> Invoke:
        start = self._peek()  # Go places the node at its name
        name = self._name(kind)
        pipe = None
        if self._peek()[0] != "right":
            pipe = self._pipe(f"{kind} clause", line)
        else:
            self._next()
        src = f'{{{{{kind} "{name}"{" " + " | ".join(c.src for c in pipe.cmds) if pipe else ""}}}}}'
        if kind == "block":
            self.defines[name] = self._body("block clause")
        return Invoke(name, pipe, start.pos, src)

    def _branch(self, kind: str, line: int) -> Branch:
        depth = len(self.vars)
        pipe = self._pipe(kind, line)
        top = self.top
        self.top = False
        if kind == "range":
            self.range_depth += 1
        body, stop = self._list()
        if kind == "range":
            self.range_depth -= 1
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
        self.top = top
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
            names, more = self._chain()
            decl = ", ".join(pipe.decl) + (" := " if pipe.decl else "")
            src = "(" + decl + " | ".join(c.src for c in pipe.cmds) + ")" + more
            return Sub(pipe, pos, src, names)
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
) -> Parsed:
    """Parse ``text``; raise ``RuleError("template: NAME:LINE: problem")`` like Go's parser.

    ``funcs`` are the callable names, ``unsupported`` names Go knows but the embedded
    engine does not run, ``variables`` the ones defined before the text (``$labels``...).
    """
    try:
        items = lex(text)
        return _Parser(items, funcs, unsupported, variables).parse()
    except TemplateSyntaxError as exc:
        raise RuleError(f"template: {name}:{exc.line}: {exc.message}") from None
