"""One validation library for every input: msgspec.

Config sections, request bodies, Alertmanager's notifications and pod annotations are
``msgspec.Struct`` types, converted *strictly* from what YAML or JSON gave: ``"5"`` is
not a number and ``1`` is not ``true``. msgspec also decodes every scrape and journal
entry, so one library, loaded once, does all of it.

A value type with a check of its own (a duration, a URL, a path) subclasses ``Checked``
and implements ``parse``, which raises ``ValueError`` saying what was expected and what
came; msgspec adds where. A struct's cross-field check is its ``__post_init__``, raising
``ValueError`` the same way.

msgspec stops at the first problem, so one conversion reports one ``Problem``: where
(``loc``, the keys and indexes from the top) and what, in the sidecar's words rather
than msgspec's (``unknown key``, ``required key is missing``, ``expected int, got
'5'``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import msgspec

from sidecar.core.errors import clip

__all__ = [
    "Checked",
    "Model",
    "Problem",
    "builtins",
    "convert",
    "decode_json",
    "json_problem",
    "path_text",
    "schema_hook",
]

T = TypeVar("T")


class Checked:
    """A value type with its own check: ``parse`` builds it from what YAML or JSON gave.

    Subclass it together with the builtin it refines (``class Url(Checked, str)``);
    ``json_schema`` is what the OpenAPI document says of it.
    """

    __slots__ = ()
    json_schema: ClassVar[dict[str, Any]] = {}

    @classmethod
    def parse(cls, value: object) -> Self:
        """The value, or ``ValueError`` saying what was expected and what came."""
        raise NotImplementedError


def path_text(value: object) -> str:
    """A path as written in a config or body: a string, or ``ValueError``."""
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a path, got {clip(repr(value), 80)}")


def _dec_hook(type_: type, value: object) -> object:
    if isinstance(type_, type) and issubclass(type_, Checked):
        return type_.parse(value)
    if type_ is Path:
        # Paths are written as strings: the one lax conversion.
        return Path(path_text(value))
    raise NotImplementedError(f"no conversion to {type_!r}")


def schema_hook(type_: type) -> dict[str, Any]:
    """``msgspec.json.schema``'s hook: a ``Checked`` type's ``json_schema``."""
    if isinstance(type_, type) and issubclass(type_, Checked):
        return dict(type_.json_schema)
    if type_ is Path:
        return {"type": "string"}
    raise NotImplementedError(f"no JSON Schema for {type_!r}")


def _enc_hook(value: object) -> object:
    if isinstance(value, Checked):
        for base in (str, float, int):
            if isinstance(value, base):
                return base(value)
        if not isinstance(value, Path):
            return str(value)  # a value of its own kind (a secret) writes as its str
    if isinstance(value, Path):
        return str(value)
    raise NotImplementedError(f"no conversion of {type(value)!r}")


def builtins(value: object) -> Any:
    """``value`` (a struct, or a collection of them) as dicts, lists, strings and numbers:
    what YAML or JSON would write, ``Checked`` values as their builtin."""
    return msgspec.to_builtins(value, enc_hook=_enc_hook)


def convert(raw: object, type_: type[T]) -> T:
    """``raw`` (what YAML or JSON decoding gave) as ``type_``, checked strictly.

    Raises ``msgspec.ValidationError``; ``Problem.of`` says where and what.
    """
    return msgspec.convert(raw, type_, strict=True, dec_hook=_dec_hook)


def decode_json(body: bytes | str, type_: type[T]) -> T:
    """A JSON document as ``type_``, checked strictly.

    Raises ``msgspec.ValidationError`` for a document of the wrong shape and
    ``msgspec.DecodeError`` (its base class) for one that is not JSON at all, or that
    nests deeper than Python's recursion limit lets msgspec follow.
    """
    try:
        return msgspec.json.decode(body, type=type_, strict=True, dec_hook=_dec_hook)
    except RecursionError:
        # A hostile ``[[[[...`` of a few kilobytes: an answer, never a crash.
        raise msgspec.DecodeError("Nested too deeply") from None


class Model(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The base of a validated input: frozen, no unknown keys, keyword-only fields.

    ``validate`` is ``convert`` into the class. Building one by its constructor checks
    nothing: that is for code that already holds checked values.
    """

    @classmethod
    def validate(cls, raw: object) -> Self:
        """``raw`` as this type; ``msgspec.ValidationError`` at the first problem."""
        return convert(raw, cls)


_AT = re.compile(r"^(?P<what>.*) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[\.\.\.\]")
_FIELD = re.compile(r"^Object (contains unknown|missing required) field `(?P<name>[^`]*)`$")
_BACKTICKED = re.compile(r"`([^`]*)`")
_MISSING = object()


@dataclass(frozen=True)
class Problem:
    """The one problem a ``msgspec.ValidationError`` names: where, and what."""

    loc: tuple[str, ...]
    """Keys and list indexes from the top, as strings (``("scrape", "maps", "0")``); a
    dict's own key is not named by msgspec and is left out."""
    message: str

    @classmethod
    def of(cls, exc: msgspec.ValidationError, raw: object = _MISSING) -> Problem:
        """Parse ``exc``'s message. With ``raw`` (the input that was converted), a type
        or range problem ends with the offending value (``got '5'``); without it, with
        its type only (``got str``), for input that must not be echoed."""
        text = str(exc)
        m = _AT.match(text)
        what, path = (m["what"], m["path"]) if m else (text, "")
        loc = tuple(a or b for a, b in _STEP.findall(path) if a or b)
        field = _FIELD.match(what)
        if field:
            known = field[1] == "missing required"
            return cls((*loc, field["name"]), "required key is missing" if known else "unknown key")
        if not what.startswith(("Expected `", "Invalid enum value")):
            return cls(loc, what)  # the sidecar's own words, from a check of ours
        what = _BACKTICKED.sub(r"\1", what[0].lower() + what[1:])
        if raw is _MISSING and what.startswith("invalid enum value"):
            return cls(loc, "invalid enum value")  # msgspec's text holds the value itself
        if raw is not _MISSING and "[...]" not in path:
            value = _lookup(raw, loc)
            if value is not _MISSING and not what.startswith("invalid enum value"):
                shown = clip(repr(value), 80)
                what = what.split(", got ")[0] + f", got {shown}"
        return cls(loc, what)

    def line(self, root: str = "") -> str:
        """``key.path: problem`` (``root`` names a problem of the whole input)."""
        where = ".".join(self.loc) or root
        return f"{where}: {self.message}" if where else self.message


def _lookup(raw: object, loc: tuple[str, ...]) -> object:
    node = raw
    for step in loc:
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            return _MISSING
    return node


def json_problem(exc: msgspec.DecodeError) -> Problem:
    """What ``decode_json`` refused, never echoing the input: ``Problem.of`` for a
    document of the wrong shape, ``Invalid JSON: `` and the parser's account (where it
    stopped) for one that is not JSON at all."""
    if isinstance(exc, msgspec.ValidationError):
        return Problem.of(exc)
    detail = str(exc).removeprefix("JSON is malformed: ")
    return Problem((), f"Invalid JSON: {detail[:1].lower()}{detail[1:]}")
