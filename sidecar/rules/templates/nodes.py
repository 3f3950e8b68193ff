"""The tree of a parsed alert template (``parse`` builds it, ``expand`` runs it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Action",
    "Arg",
    "Branch",
    "Cmd",
    "Const",
    "Field",
    "Func",
    "Invoke",
    "Loop",
    "Node",
    "Parsed",
    "Pipe",
    "Sub",
    "Text",
    "Var",
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
    """A parenthesized pipeline, with the fields read from its value: ``(x).A.B``."""

    pipe: Pipe
    pos: int = 0
    src: str = ""
    names: tuple[str, ...] = ()


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


@dataclass(frozen=True, slots=True)
class Invoke:
    """``{{template "name" pipeline}}``: run a named template with the pipeline as dot."""

    name: str
    pipe: Pipe | None
    pos: int
    src: str


@dataclass(frozen=True, slots=True)
class Loop:
    """``{{break}}`` or ``{{continue}}`` inside a ``range``."""

    kind: Literal["break", "continue"]


Node = Text | Action | Branch | Invoke | Loop


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed template: its main tree and the templates it defines by name."""

    nodes: tuple[Node, ...]
    defines: dict[str, tuple[Node, ...]]
