"""Template functions over query results, and Go's ``html``, ``js`` and ``slice``.

``query`` runs PromQL from a template at the alert's evaluation time (Prometheus runs it
against its own engine and storage; the sidecar against its store); its result is a list
of ``QuerySample`` (Prometheus's ``queryResult`` of ``*sample``), read with ``first``,
``label``, ``value``, ``strvalue``, ``sortByLabel``, ``range``, ``len`` and ``index``.
``args`` packs values into a map for ``{{template}}``. The functions that need the
alert's context (``query``, ``externalURL``, ``pathPrefix``) are bound by the expander.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sidecar.gocompat.gofmt import go_sprint, go_sprint_all, go_type
from sidecar.rules.templates.funcs import FuncError, GoTime

__all__ = ["NIL_URL", "QUERY_FUNCS", "QuerySample", "external_url", "path_prefix", "type_name"]

NIL_URL = "runtime error: invalid memory address or nil pointer dereference"
"""What ``externalURL`` and ``pathPrefix`` fail with in promtool, whose rule manager has
no external URL (a nil ``*url.URL`` in Go)."""


@dataclass(slots=True)
class QuerySample:
    """One element of a query result: Prometheus's ``sample`` (labels and value)."""

    labels: dict[str, str]
    value: float

    def __str__(self) -> str:
        # text/template prints what a pointer points to: the struct, as {field field}.
        return f"{{{go_sprint(self.labels)} {go_sprint(self.value)}}}"


def type_name(value: object) -> str:
    """Go's type name for error texts, query values included."""
    if isinstance(value, QuerySample):
        return "*template.sample"
    if isinstance(value, list):
        return "template.queryResult"
    if isinstance(value, GoTime):
        return "*time.Time"
    return go_type(value)


def _want(value: object, kind: type, name: str) -> None:
    if not isinstance(value, kind):
        raise FuncError(f"wrong type for value; expected {name}; got {type_name(value)}")


def _first(result: object) -> QuerySample:
    _want(result, list, "template.queryResult")
    assert isinstance(result, list)
    if not result:
        raise FuncError("first() called on vector with no elements")
    sample: QuerySample = result[0]
    return sample


def _sample(s: object) -> QuerySample:
    _want(s, QuerySample, "*template.sample")
    assert isinstance(s, QuerySample)
    return s


def _sort_by_label(label: str, result: object) -> list[QuerySample]:
    _want(result, list, "template.queryResult")
    assert isinstance(result, list)
    # sort.Stable, in place, by the label's value (Go compares strings bytewise, which
    # orders as Python's code-point comparison does).
    result.sort(key=lambda s: s.labels.get(label, ""))
    return result


def _args(*values: object) -> dict[str, object]:
    return {f"arg{i}": v for i, v in enumerate(values)}


_HTML = {"\0": "\ufffd", '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _html(*values: object) -> str:
    text = _sprint_args(values)
    return "".join(_HTML.get(c, c) for c in text)


_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
       "=": "\\u003D"}  # fmt: skip


def _js(*values: object) -> str:
    out = []
    for c in _sprint_args(values):
        if c in _JS:
            out.append(_JS[c])
        elif c < " " or not c.isprintable():
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def _sprint_args(values: Sequence[object]) -> str:
    # html and js take a lone string as it is, anything else through fmt.Sprint.
    if len(values) == 1 and isinstance(values[0], str):
        return values[0]
    return go_sprint_all(values)


def _slice(item: object, *indexes: object) -> object:
    if not isinstance(item, str | list):
        raise FuncError(f"can't slice item of type {type_name(item)}")
    if len(indexes) > 3 or (len(indexes) == 3 and isinstance(item, str)):
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    size = len(item.encode()) if isinstance(item, str) else len(item)
    bounds = []
    for ix in indexes:
        if not isinstance(ix, int) or isinstance(ix, bool):
            raise FuncError(f"cannot index slice/array with type {type_name(ix)}")
        if not 0 <= ix <= size:
            raise FuncError(f"index out of range: {ix}")
        bounds.append(ix)
    lo = bounds[0] if bounds else 0
    hi = bounds[1] if len(bounds) > 1 else size
    if lo > hi:
        raise FuncError(f"invalid slice index: {lo} > {hi}")
    if isinstance(item, str):
        return item.encode()[lo:hi].decode(errors="replace")
    return item[lo:hi]


def _call(fn: object, *args: object) -> object:
    # No template value is a Go function: `call` fails as Go's does on anything else.
    if fn is None:
        raise FuncError("call of nil")
    raise FuncError(f"non-function of type {type_name(fn)}")


def external_url(url: str | None) -> str:
    """``externalURL``: the URL as configured."""
    if url is None:
        raise FuncError(NIL_URL)
    return url


def path_prefix(url: str | None) -> str:
    """``pathPrefix``: the external URL's path, unescaped as Go's ``url.URL.Path`` is."""
    if url is None:
        raise FuncError(NIL_URL)
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path)


QUERY_FUNCS: Mapping[str, tuple[Callable[..., object], tuple[str, ...]]] = {
    "first": (_first, ("any",)),
    "label": (lambda label, s: _sample(s).labels.get(label, ""), ("str", "any")),
    "value": (lambda s: _sample(s).value, ("any",)),
    "strvalue": (lambda s: _sample(s).labels.get("__value__", ""), ("any",)),
    "sortByLabel": (_sort_by_label, ("str", "any")),
    "args": (_args, ("any*",)),
    "html": (_html, ("any*",)),
    "js": (_js, ("any*",)),
    "slice": (_slice, ("any", "any*")),
    "call": (_call, ("any", "any*")),
}
"""Function name -> (implementation, parameter kinds), as ``funcs.FUNCS``."""
