"""The functions alert templates call, with Prometheus's exact output formats.

Each mirrors ``template/template.go`` of Prometheus 2.42 (``humanize`` and friends print
with Go's ``%.4g``) or a Go ``text/template`` builtin (``printf``, ``eq``, ``len``...).
A function raises ``FuncError`` with Go's message; the expander turns it into the
``<error expanding template: ...>`` text Prometheus puts in the label or annotation.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sidecar.core.durations import parse_duration
from sidecar.core.times import go_time
from sidecar.gocompat.gofmt import (
    go_percent_g,
    go_sprint,
    go_sprint_all,
    go_sprintf,
    go_title,
    go_type,
)

__all__ = [
    "FUNCS",
    "UNSUPPORTED",
    "FuncError",
    "GoTime",
    "compare",
    "table_link",
    "to_float",
    "truth",
]


class FuncError(Exception):
    """A template function failed; the message is Go's."""


class GoTime:
    """A ``time.Time`` value in a template (``toTime``); prints as Go's ``Time.String``."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __str__(self) -> str:
        return go_time(self.ms)


_GO_FLOAT = re.compile(r"^[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|infinity|nan)$", re.IGNORECASE)


def to_float(value: object) -> float:
    """Prometheus's ``convertToFloat``: float64, numeric string, or integer."""
    if isinstance(value, bool):
        raise FuncError("can't convert bool to float")
    if isinstance(value, float | int):
        return float(value)
    if isinstance(value, str):
        if not _GO_FLOAT.match(value):
            raise FuncError(f'strconv.ParseFloat: parsing "{value}": invalid syntax')
        return float(value)
    raise FuncError(f"can't convert {go_type(value)} to float")


def truth(value: object) -> bool:
    """Go template truth: false, zero, nil and empty are false."""
    if value is None:
        return False
    if isinstance(value, bool | int | float):
        return value != 0
    if isinstance(value, str | Mapping | list):
        return len(value) > 0
    return True


def _shrink(v: float, prefixes: str | Sequence[str], base: float, up: bool) -> tuple[float, str]:
    prefix = ""
    for p in prefixes:
        if (abs(v) < base) if up else (abs(v) >= 1):
            break
        prefix = p
        v = v / base if up else v * base
    return v, prefix


def _humanize(value: object) -> str:
    v = to_float(value)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return go_percent_g(v, 4)
    if abs(v) >= 1:
        v, prefix = _shrink(v, "kMGTPEZY", 1000, up=True)
    else:
        v, prefix = _shrink(v, "munpfazy", 1000, up=False)
    return go_percent_g(v, 4) + prefix


def _humanize1024(value: object) -> str:
    v = to_float(value)
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return go_percent_g(v, 4)
    v, prefix = _shrink(v, ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"), 1024, up=True)
    return go_percent_g(v, 4) + prefix


def _quo(a: int, b: int) -> int:
    q = abs(a) // b
    return -q if a < 0 else q


def _rem(a: int, b: int) -> int:
    return a - _quo(a, b) * b


def _humanize_duration(value: object) -> str:
    v = to_float(value)
    if math.isnan(v) or math.isinf(v):
        return go_percent_g(v, 4)
    if v == 0:
        return go_percent_g(v, 4) + "s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        v = abs(v)
        # Go's int64(v) on amd64: out of range gives the minimum int64, and / and %
        # truncate towards zero.
        d = int(v) if v < 2.0**63 else -(2**63)
        seconds, minutes = _rem(d, 60), _rem(_quo(d, 60), 60)
        hours, days = _rem(_quo(d, 3600), 24), _quo(d, 86400)
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{go_percent_g(v, 4)}s"
    v, prefix = _shrink(v, "munpfazy", 1000, up=False)
    return f"{go_percent_g(v, 4)}{prefix}s"


def _humanize_percentage(value: object) -> str:
    return go_percent_g(to_float(value) * 100, 4) + "%"


def _to_time(value: object) -> GoTime:
    v = to_float(value)
    if math.isnan(v) or math.isinf(v):
        raise FuncError("value is NaN or Inf")
    ns = v * 1e9
    if not -(2.0**63) <= ns < 2.0**63:
        raise FuncError(
            f"{go_sprint(v)} cannot be represented as a nanoseconds timestamp "
            "since it overflows int64"
        )
    return GoTime(int(int(ns) / 1_000_000))


def _humanize_timestamp(value: object) -> str:
    v = to_float(value)
    if math.isnan(v) or math.isinf(v):
        return go_percent_g(v, 4)
    return str(_to_time(v))


def _go_regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise FuncError(f"error parsing regexp: {exc}: `{pattern}`") from None


_REF = re.compile(r"\$(\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def _expand(m: re.Match[str], repl: str) -> str:
    def ref(r: re.Match[str]) -> str:
        if r.group(1) == "$":
            return "$"
        name = r.group(2) or r.group(3)
        if name.isdigit():
            idx = int(name)
            return (m.group(idx) or "") if idx <= (m.re.groups) else ""
        return (m.group(name) or "") if name in m.re.groupindex else ""

    return _REF.sub(ref, repl)


def _re_replace_all(pattern: str, repl: str, text: str) -> str:
    rx = _go_regex(pattern)
    out: list[str] = []
    pos = 0
    last_end = -1
    for m in rx.finditer(text):
        # Go ignores an empty match right after the previous match.
        if m.start() == m.end() == last_end:
            continue
        out.append(text[pos : m.start()])
        out.append(_expand(m, repl))
        pos = last_end = m.end()
    out.append(text[pos:])
    return "".join(out)


def _match(pattern: str, text: str) -> bool:
    return _go_regex(pattern).search(text) is not None


def _split_host_port(hostport: str) -> tuple[str, str] | None:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or not hostport.startswith(":", end + 1):
            return None
        return hostport[1:end], hostport[end + 2 :]
    host, sep, port = hostport.rpartition(":")
    if not sep or ":" in host:
        return None
    return host, port


def _strip_port(hostport: str) -> str:
    parts = _split_host_port(hostport)
    return hostport if parts is None else parts[0]


def _strip_domain(hostport: str) -> str:
    parts = _split_host_port(hostport)
    host, port = parts if parts is not None else (hostport, "")
    if re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]*:[0-9a-fA-F:.]*", host):
        return hostport
    host = host.split(".")[0]
    if port:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return host


def _parse_duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise FuncError(str(exc)) from None


def _link(expr: str, tab: int) -> str:
    return f"/graph?g0.expr={urllib.parse.quote_plus(expr, safe='')}&g0.tab={tab}"


def table_link(expr: str) -> str:
    """Prometheus's ``TableLinkForExpression``: also the generator URL path of its alerts."""
    return _link(expr, 1)


def _case(method: Callable[[str], str]) -> Callable[[str], str]:
    def convert(text: str) -> str:
        # Go maps rune by rune; a rune without a one-rune mapping stays as it is.
        return "".join(c2 if len(c2 := method(c)) == 1 else c for c in text)

    return convert


_COMPARABLE = frozenset({"bool", "int", "float64", "string"})


def _kind(value: object) -> str:
    """The Go basic kind ``compare`` works on, or ``other``."""
    kind = go_type(value)
    return kind if kind in _COMPARABLE else "other"


def compare(op: str, a: object, b: object) -> bool:
    """Go's ``eq``/``ne``/``lt``/``le``/``gt``/``ge`` on basic values."""
    ka, kb = _kind(a), _kind(b)
    if ka == "other" or kb == "other":
        raise FuncError("invalid type for comparison")
    if ka != kb:
        raise FuncError("incompatible types for comparison")
    if op == "eq":
        return a == b
    if op == "ne":
        return a != b
    if ka == "bool":
        raise FuncError("invalid type for comparison")
    x: Any = a
    y: Any = b
    return bool({"lt": x < y, "le": x <= y, "gt": x > y, "ge": x >= y}[op])


def _eq(a: object, *rest: object) -> bool:
    if not rest:
        raise FuncError("missing argument for comparison")
    return any(compare("eq", a, b) for b in rest)


def _len(value: object) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, Mapping | list):
        return len(value)
    raise FuncError(f"len of type {go_type(value)}")


def _index(item: object, *keys: object) -> object:
    for key in keys:
        if isinstance(item, list):
            if not isinstance(key, int) or isinstance(key, bool):
                raise FuncError(f"cannot index slice/array with type {go_type(key)}")
            if not 0 <= key < len(item):
                raise FuncError(f"index out of range: {key}")
            item = item[key]
            continue
        if not isinstance(item, Mapping):
            raise FuncError(f"can't index item of type {go_type(item)}")
        if not isinstance(key, str):
            raise FuncError(f"value has type {go_type(key)}; should be string")
        item = item.get(key, "")
    return item


def _print(*args: object) -> str:
    return go_sprint_all(args)


Signature = tuple[str, ...]
"""Parameter kinds: ``str`` (must be a string), ``any``; a trailing ``*`` for varargs."""

FUNCS: dict[str, tuple[Callable[..., object], Signature]] = {
    "humanize": (_humanize, ("any",)),
    "humanize1024": (_humanize1024, ("any",)),
    "humanizeDuration": (_humanize_duration, ("any",)),
    "humanizePercentage": (_humanize_percentage, ("any",)),
    "humanizeTimestamp": (_humanize_timestamp, ("any",)),
    "toTime": (_to_time, ("any",)),
    "reReplaceAll": (_re_replace_all, ("str", "str", "str")),
    "match": (_match, ("str", "str")),
    "title": (go_title, ("str",)),
    "toUpper": (_case(str.upper), ("str",)),
    "toLower": (_case(str.lower), ("str",)),
    "safeHtml": (lambda text: text, ("str",)),
    "stripPort": (_strip_port, ("str",)),
    "stripDomain": (_strip_domain, ("str",)),
    "parseDuration": (_parse_duration, ("str",)),
    "graphLink": (lambda expr: _link(expr, 0), ("str",)),
    "tableLink": (table_link, ("str",)),
    "printf": (lambda fmt, *args: go_sprintf(fmt, args), ("str", "any*")),
    "print": (_print, ("any*",)),
    "println": (lambda *args: " ".join(go_sprint(a) for a in args) + "\n", ("any*",)),
    "urlquery": (lambda *a: urllib.parse.quote_plus(_print(*a), safe=""), ("any*",)),
    "len": (_len, ("any",)),
    "index": (_index, ("any", "any*")),
    "not": (lambda v: not truth(v), ("any",)),
    "eq": (_eq, ("any", "any*")),
    "ne": (lambda a, b: compare("ne", a, b), ("any", "any")),
    "lt": (lambda a, b: compare("lt", a, b), ("any", "any")),
    "le": (lambda a, b: compare("le", a, b), ("any", "any")),
    "gt": (lambda a, b: compare("gt", a, b), ("any", "any")),
    "ge": (lambda a, b: compare("ge", a, b), ("any", "any")),
}
"""Function name -> (implementation, parameter kinds). ``and``/``or`` are in the expander."""

UNSUPPORTED: frozenset[str] = frozenset()
"""Names Go accepts that the embedded engine refuses at load time: none left."""
