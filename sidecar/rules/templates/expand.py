"""Alert label and annotation templates: Go ``text/template`` as Prometheus runs it.

Prometheus prepends ``{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}
{{$externalURL := .ExternalURL}}{{$value := .Value}}`` to every label and annotation of
an alerting rule and expands it per alert with ``missingkey=zero``; a failure becomes the
text ``<error expanding template: ...>`` rather than a lost alert. ``compile_template``
parses once at load time (syntax the engine does not run is a load error);
``AlertTemplate.expand`` runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from sidecar.core.errors import RuleError
from sidecar.gocompat.gofmt import go_sprint
from sidecar.rules.templates.funcs import FUNCS, UNSUPPORTED, FuncError, GoTime, truth
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
    Pipe,
    Sub,
    Text,
    Var,
)
from sidecar.rules.templates.parse import parse_template
from sidecar.rules.templates.queryfuncs import (
    QUERY_FUNCS,
    QuerySample,
    external_url,
    path_prefix,
    type_name,
)

__all__ = ["AlertTemplate", "TemplateData", "compile_template"]

_VARIABLES = ("$labels", "$externalLabels", "$externalURL", "$value")
# Prometheus defines the variables by prepending this text; Go counts columns after it.
_DEFS_BYTES = len(
    "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}"
    "{{$externalURL := .ExternalURL}}{{$value := .Value}}"
)
_ALL_FUNCS = {**FUNCS, **QUERY_FUNCS}

QueryFunc = Callable[[str], Sequence[tuple[Sequence[tuple[str, str]], float]]]
"""Runs PromQL at the alert's evaluation time: (labels, value) pairs; raises ``RuleError``."""


@dataclass(frozen=True, slots=True)
class TemplateData:
    """What an alert template sees: Prometheus's ``AlertTemplateData``."""

    labels: Mapping[str, str]
    external_labels: Mapping[str, str] = field(default_factory=dict)
    external_url: str = ""
    value: float = 0.0
    query: QueryFunc | None = None
    """What the ``query`` function runs; None fails it with "no query engine available"."""
    manager_url: str | None = ""
    """The URL ``externalURL`` and ``pathPrefix`` read; None is promtool's nil URL (both
    fail as Go does on a nil pointer)."""


def _query(data: TemplateData, text: str) -> list[QuerySample]:
    if data.query is None:
        raise FuncError("no query engine available")
    try:
        result = data.query(text)
    except RuleError as exc:
        raise FuncError(exc.message) from None
    return [QuerySample(dict(labels), value) for labels, value in result]


_DATA_FUNCS: dict[str, tuple[Callable[..., object], tuple[str, ...]]] = {
    "query": (_query, ("str",)),
    "externalURL": (lambda data: external_url(data.manager_url), ()),
    "pathPrefix": (lambda data: path_prefix(data.manager_url), ()),
}
_NAMES = frozenset(_ALL_FUNCS) | frozenset(_DATA_FUNCS) | {"and", "or"}


# The methods of the *time.Time `toTime` returns that take no argument and rule authors
# call: {{ (toTime $value).Unix }}.
_TIME_METHODS: dict[str, Callable[[GoTime], object]] = {
    "Unix": lambda tm: tm.ms // 1000,
    "UnixMilli": lambda tm: tm.ms,
    "UTC": lambda tm: tm,
}


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Exec(Exception):
    def __init__(self, pos: int, where: str, message: str) -> None:
        self.pos = pos
        self.where = where
        self.message = message
        self.template: str | None = None  # a named template it happened in
        super().__init__(message)


_STRUCT = (
    "struct { Labels map[string]string; ExternalLabels map[string]string; "
    "ExternalURL string; Value float64 }"
)


class _State:
    def __init__(self, data: TemplateData, defines: Mapping[str, tuple[Node, ...]]) -> None:
        self.data = data
        self.defines = defines
        # Templates only read the maps (no function writes to one): no copies needed.
        self.vars: list[list[object]] = [
            ["$", data],
            ["$labels", data.labels],
            ["$externalLabels", data.external_labels],
            ["$externalURL", data.external_url],
            ["$value", data.value],
        ]
        self.out: list[str] = []

    def lookup(self, name: str) -> object:
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry[1]
        raise AssertionError(name)  # the parser rejects undefined variables

    def set(self, name: str, value: object) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return


def _field(value: object, names: tuple[str, ...], at: Field | Var | Sub) -> object:
    for name in names:
        if isinstance(value, TemplateData):
            attrs = {
                "Labels": value.labels,
                "ExternalLabels": value.external_labels,
                "ExternalURL": value.external_url,
                "Value": value.value,
            }
            if name not in attrs:
                raise _Exec(at.pos, at.src, f"can't evaluate field {name} in type {_STRUCT}")
            value = attrs[name]
        elif isinstance(value, GoTime) and name in _TIME_METHODS:
            value = _TIME_METHODS[name](value)
        elif isinstance(value, QuerySample):
            if name not in ("Labels", "Value"):
                raise _Exec(at.pos, at.src, f"can't evaluate field {name} in type *template.sample")
            value = value.labels if name == "Labels" else value.value
        elif isinstance(value, Mapping):
            # missingkey=zero: a label that is not there reads as "".
            value = value.get(name, "")
        elif value is None:
            raise _Exec(at.pos, at.src, f"nil pointer evaluating interface {{}}.{name}")
        else:
            raise _Exec(at.pos, at.src, f"can't evaluate field {name} in type {type_name(value)}")
    return value


def _arg(st: _State, arg: Arg, dot: object) -> object:
    if isinstance(arg, Field):
        return _field(dot, arg.names, arg)
    if isinstance(arg, Var):
        return _field(st.lookup(arg.name), arg.names, arg)
    if isinstance(arg, Const):
        return arg.value
    if isinstance(arg, Sub):
        return _field(_pipe(st, arg.pipe, dot), arg.names, arg)
    raise _Exec(arg.pos, arg.src, f"can't give argument to non-function {arg.name}")


def _call(st: _State, cmd: Cmd, dot: object, final: object, has_final: bool) -> object:
    head = cmd.args[0]
    if not isinstance(head, Func):
        if len(cmd.args) > 1 or has_final:
            raise _Exec(head.pos, head.src, f"can't give argument to non-function {head.src}")
        return _arg(st, head, dot)
    name = head.name
    rest = list(cmd.args[1:])
    if name in ("and", "or"):
        # Go 1.18+ evaluates and/or lazily and returns the deciding operand.
        operands: list[Arg | None] = [*rest, None] if has_final else list(rest)
        if not operands:
            raise _Exec(head.pos, name, f"wrong number of args for {name}: want at least 1 got 0")
        result: object = None
        for operand in operands:
            result = final if operand is None else _arg(st, operand, dot)
            if truth(result) != (name == "and"):
                return result
        return result
    if name in _DATA_FUNCS:
        bound, sig = _DATA_FUNCS[name]
        fn: Callable[..., object] = partial(bound, st.data)
    else:
        fn, sig = _ALL_FUNCS[name]
    args = [_arg(st, a, dot) for a in rest]
    if has_final:
        args.append(final)
    variadic = bool(sig) and sig[-1].endswith("*")
    fixed = len(sig) - 1 if variadic else len(sig)
    if len(args) < fixed or (not variadic and len(args) != fixed):
        want = f"at least {fixed}" if variadic else str(fixed)
        raise _Exec(head.pos, name, f"wrong number of args for {name}: want {want} got {len(args)}")
    for i, value in enumerate(args[:fixed]):
        if sig[i] == "str" and not isinstance(value, str):
            # Go reports the argument, or the command when the value came down the pipe.
            at = rest[i] if i < len(rest) else cmd
            raise _Exec(
                at.pos, at.src, f"wrong type for value; expected string; got {type_name(value)}"
            )
    try:
        return fn(*args)
    except FuncError as exc:
        raise _Exec(cmd.pos, cmd.src, f"error calling {name}: {exc}") from None


def _pipe(st: _State, pipe: Pipe, dot: object) -> object:
    value: object = None
    for i, cmd in enumerate(pipe.cmds):
        value = _call(st, cmd, dot, value, i > 0)
    for name in pipe.decl:
        if pipe.assign:
            st.set(name, value)
        else:
            st.vars.append([name, value])
    return value


def _invoke(st: _State, node: Invoke, dot: object) -> None:
    body = st.defines.get(node.name)
    if body is None:
        raise _Exec(node.pos, node.src, f'template "{node.name}" not defined')
    arg = _pipe(st, node.pipe, dot) if node.pipe is not None else None
    saved = st.vars
    st.vars = [["$", arg]]
    try:
        _run(st, body, arg)
    except _Exec as exc:
        if exc.template is None:
            exc.template = node.name
        raise
    finally:
        st.vars = saved


def _run(st: _State, nodes: tuple[Node, ...], dot: object) -> None:
    for node in nodes:
        if isinstance(node, Loop):
            raise _Break if node.kind == "break" else _Continue
        if isinstance(node, Invoke):
            _invoke(st, node, dot)
            continue
        if isinstance(node, Action):
            value = _pipe(st, node.pipe, dot)
            if not node.pipe.decl:
                st.out.append("<no value>" if value is None else go_sprint(value))
            continue
        if not isinstance(node, Branch):
            st.out.append(node.text)
            continue
        depth = len(st.vars)
        if node.kind == "range":
            _range(st, node, dot)
        else:
            value = _pipe(st, node.pipe, dot)
            if truth(value):
                _run(st, node.body, value if node.kind == "with" else dot)
            else:
                _run(st, node.orelse, dot)
        del st.vars[depth:]


def _range(st: _State, node: Branch, dot: object) -> None:
    pipe = Pipe((), False, node.pipe.cmds)
    value = _pipe(st, pipe, dot)
    if value is None:
        _run(st, node.orelse, dot)
        return
    if isinstance(value, list):
        items: list[tuple[object, object]] = list(enumerate(value))
    elif isinstance(value, Mapping):
        items = [(key, value[key]) for key in sorted(value)]
    else:
        cmd = pipe.cmds[0]
        raise _Exec(cmd.pos, cmd.src, f"range can't iterate over {go_sprint(value)}")
    if not items:
        _run(st, node.orelse, dot)
        return
    for key, elem in items:
        depth = len(st.vars)
        names = node.pipe.decl
        if len(names) == 1:
            st.vars.append([names[0], elem])
        elif len(names) == 2:
            st.vars.append([names[0], key])
            st.vars.append([names[1], elem])
        try:
            _run(st, node.body, elem)
        except _Break:
            break
        except _Continue:
            continue
        finally:
            del st.vars[depth:]


@dataclass(frozen=True, slots=True)
class AlertTemplate:
    """One parsed label or annotation value of an alerting rule."""

    text: str
    name: str
    nodes: tuple[Node, ...]
    defines: Mapping[str, tuple[Node, ...]] = field(default_factory=dict)

    def expand(self, data: TemplateData) -> str:
        """Expand for one alert; a failure gives Prometheus's error text, never raises."""
        if "{{" not in self.text:
            # Most labels are plain text (``severity: page``); they run every evaluation.
            return self.text
        st = _State(data, self.defines)
        try:
            _run(st, self.nodes, data)
        except _Exec as exc:
            # Go's position: line, and byte column counted from the start of the text
            # Prometheus parses, i.e. after its variable definitions on the first line.
            before = self.text[: exc.pos]
            line = before.count("\n") + 1
            col = (
                _DEFS_BYTES + len(before.encode())
                if line == 1
                else len(before[before.rindex("\n") + 1 :].encode())
            )
            return (
                f"<error expanding template: error executing template {self.name}: "
                f'template: {self.name}:{line}:{col}: executing "{exc.template or self.name}" '
                f"at <{exc.where}>: {exc.message}>"
            )
        except RecursionError:
            return f"<error expanding template: {self.name}: nesting too deep>"
        return "".join(st.out)


def compile_template(text: str, alertname: str) -> AlertTemplate:
    """Parse a label or annotation value of alert ``alertname``; raises ``RuleError``."""
    name = f"__alert_{alertname}"
    if "{{" not in text:
        return AlertTemplate(text, name, (Text(text),) if text else ())
    try:
        parsed = parse_template(text, name, _NAMES, UNSUPPORTED, _VARIABLES)
    except RecursionError:
        raise RuleError(f"template: {name}: nesting too deep") from None
    return AlertTemplate(text, name, parsed.nodes, parsed.defines)
