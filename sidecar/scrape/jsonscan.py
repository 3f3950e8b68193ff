"""Decoding an expvar body lazily, and cheap looks into JSON text without building objects.

The body is validated once by msgspec and split into ``msgspec.Raw`` members that point
into it; each member is decoded only when the flattener wants it, so arrays and strings
nobody wants are never built.

The leak the sidecar watches for is often the very map the app exports: a 16 MiB body
may hold one object with millions of keys. Decoding such an object only to learn its
key count would allocate a string and a value per key, several times the body size,
which is how a sidecar gets OOM-killed next to the app it guards. ``count_members``
counts the members of an already validated container with compiled regular expressions
instead, holding one pointer per top-level comma at most (CPython interns single bytes).

Go's ``expvar.Float`` renders NaN and infinities as the bare tokens ``NaN``, ``+Inf``
and ``-Inf``, which no JSON decoder accepts; ``decode`` replaces them by string
sentinels (``NONFINITE``) that ``number`` turns back into floats, as Prometheus would.
"""

from __future__ import annotations

import math
import re

import msgspec

from sidecar.core.errors import ScrapeError, clip

__all__ = [
    "BAD_JSON",
    "LBRACE",
    "LBRACKET",
    "MIN_MEMBER_BYTES",
    "NONFINITE",
    "QUOTE",
    "count_members",
    "decode",
    "decode_object",
    "first_byte",
    "number",
    "uint",
]

LBRACE, LBRACKET, QUOTE = b'{["'
_TRUE, _FALSE, _NULL = b"tfn"
_KINDS = {LBRACKET: "an array", QUOTE: "a string", _TRUE: "a bool", _FALSE: "a bool"}

MIN_MEMBER_BYTES = 5
"""The shortest member is ``"":0`` plus a comma: an object of fewer bytes per possible
member cannot exceed a key cap, so only larger ones need counting before decoding."""

BAD_JSON = (msgspec.DecodeError, UnicodeDecodeError)
"""What decoding a member can raise: ValidationError derives from DecodeError, and
invalid UTF-8 inside a member skipped at first surfaces as UnicodeDecodeError."""

_RAW = msgspec.json.Decoder(msgspec.Raw)
_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw])
_INT = msgspec.json.Decoder(int)

# A JSON string, consumed possessively so that a failed match never backtracks into it.
_STRING = rb'"(?:[^"\\]++|\\.)*+"'
# A container with no container inside it: skipped whole, commas and all, in C.
_FLAT = rb"[\[{](?:[^\"\[\]{}]++|" + _STRING + rb")*+[\]}]"
# Everything up to the next structural byte that matters for depth, or the end. Each match
# starts where the previous one ended, so the scan never loses track of string boundaries.
_TOKEN = re.compile(rb"(?:[^\"\[\]{},]++|" + _STRING + rb"|" + _FLAT + rb")*+([\[\]{},]|\Z)")
_BLANK = re.compile(rb"\s*")
_OPENERS = (b"{", b"[")

# Go writes ``%q: %s`` for every variable and every map entry, so a bare token follows
# a closing quote, a colon and one space, and is followed by a comma, a brace or a newline.
_BARE = re.compile(rb'(?<=": )(NaN|\+Inf|-Inf)(?=[,}\n])')
_SENTINEL = {b"NaN": b'"\\u0000NaN"', b"+Inf": b'"\\u0000+Inf"', b"-Inf": b'"\\u0000-Inf"'}

NONFINITE: dict[bytes, float] = {
    b'"\\u0000NaN"': math.nan,
    b'"\\u0000+Inf"': math.inf,
    b'"\\u0000-Inf"': -math.inf,
}
"""Sentinel JSON strings standing for Go's bare non-finite tokens, and their values."""
_LONGEST_SENTINEL = max(map(len, NONFINITE))
_NUMBER_START = frozenset(b"-0123456789")
"""The first bytes of a JSON number."""
_SHORT = 64
"""Values up to this many bytes are copied whole to be read; longer ones are peeked at."""


def first_byte(raw: bytes | bytearray | memoryview | msgspec.Raw) -> int:
    """The first byte of a JSON value (values from ``msgspec.Raw`` carry no whitespace)."""
    view = memoryview(raw)
    return view[0] if view else 0


def count_members(raw: bytes | bytearray | memoryview | msgspec.Raw) -> int:
    """Count the members of one valid JSON object or array held in ``raw``.

    ``raw`` must start with the opening bracket and end with the closing one, as
    ``msgspec.Raw`` values do; the text must already have passed a JSON decoder.
    """
    view = memoryview(raw)
    end = len(view) - 1
    tokens = _TOKEN.findall(view, 1, end)
    if b"{" not in tokens and b"[" not in tokens:
        # Every nested container was flat and skipped whole: what is left are commas.
        commas = tokens.count(b",")
    else:
        depth = commas = 0
        for token in tokens:
            if token == b",":
                if depth == 0:
                    commas += 1
            elif token in _OPENERS:
                depth += 1
            elif token:
                depth -= 1
    if commas == 0 and _BLANK.fullmatch(view, 1, end):
        return 0
    return commas + 1


def decode(body: bytes | bytearray, max_object_keys: int) -> dict[str, msgspec.Raw]:
    """Validate ``body`` and split its top-level object into raw members.

    Raises ``ScrapeError`` with reason ``invalid_json``, ``not_object``, ``too_deep`` or
    ``too_many_keys``.
    """
    if len(body) <= MIN_MEMBER_BYTES * (max_object_keys + 1):
        # Too short to hold more keys than the cap: split in one pass when it is an
        # object. Anything else takes the long way below, which names the problem.
        try:
            return _OBJECT.decode(body)
        except (*BAD_JSON, RecursionError):
            pass
    try:
        raw = _RAW.decode(body)
    except RecursionError as exc:
        raise ScrapeError(
            "too_deep", "expvar body nests deeper than the decoder can follow"
        ) from exc
    except msgspec.DecodeError as exc:
        repaired = _repair_nonfinite(body)
        if repaired is None:
            raise ScrapeError(
                "invalid_json", f"expvar body is not valid JSON: {clip(exc, 200)}"
            ) from exc
        return decode(repaired, max_object_keys)
    b = first_byte(raw)
    if b != LBRACE:
        kind = _KINDS.get(b, "null" if b == _NULL else "a number")
        raise ScrapeError(
            "not_object", f"expected a JSON object at the top of the expvar body, got {kind}"
        )
    if len(raw) > MIN_MEMBER_BYTES * (max_object_keys + 1):
        n = count_members(raw)
        if n > max_object_keys:
            raise ScrapeError(
                "too_many_keys",
                f"expvar body has {n} top-level keys, "
                f"more than scrape.max_object_keys ({max_object_keys})",
            )
    try:
        return _OBJECT.decode(raw)
    except BAD_JSON as exc:
        raise ScrapeError(
            "invalid_json", f"expvar body is not valid JSON: {clip(exc, 200)}"
        ) from exc


def decode_object(raw: msgspec.Raw) -> dict[str, msgspec.Raw]:
    """One member object split into raw members; raises one of ``BAD_JSON``."""
    return _OBJECT.decode(raw)


def number(raw: msgspec.Raw) -> float | None:
    """A JSON number, bool or non-finite sentinel as a float; None for anything else."""
    if len(raw) <= _SHORT:
        # The common case, a short number, from one small copy: no memoryview.
        text = bytes(raw)
        b = text[0] if text else 0
        if b in _NUMBER_START:
            return float(text)
    else:
        b = first_byte(raw)
    if b == _TRUE:
        return 1.0
    if b == _FALSE:
        return 0.0
    if b in (LBRACE, LBRACKET, _NULL):
        return None
    if b == QUOTE:
        return NONFINITE.get(bytes(raw)) if len(raw) <= _LONGEST_SENTINEL else None
    # A validated JSON number is valid float() syntax; one too large for a double
    # becomes +Inf or -Inf, as Go's strconv.ParseFloat (and so Prometheus) returns it.
    return float(bytes(raw))


def uint(raw: msgspec.Raw | None) -> int | None:
    """A non-negative JSON integer, or None for anything else (or nothing)."""
    if raw is None:
        return None
    try:
        value = _INT.decode(raw)
    except BAD_JSON:
        return None
    return value if value >= 0 else None


def _repair_nonfinite(body: bytes | bytearray) -> bytes | None:
    """Replace Go's bare ``NaN``/``+Inf``/``-Inf`` values by sentinels; None if there are none."""
    if b"NaN" not in body and b"Inf" not in body:
        return None
    repaired, n = _BARE.subn(lambda m: _SENTINEL[m.group(1)], body)
    return repaired if n else None
