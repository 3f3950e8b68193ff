"""Go's text formatting, where Prometheus's output shows through to rule authors.

Alert annotations print values with Go's ``fmt`` (``{{ $value }}``, ``printf``,
``humanize``'s ``%.4g``), ``promtool test rules`` prints labels with ``strconv.Quote``
and sample values with ``strconv.FormatFloat(v, 'E', -1, 64)``, and the rules API
prints alert values with ``'e'``. Python's ``repr`` finds the same shortest digits as
Go's ``strconv``; the thresholds, exponent forms, ``NaN``/``+Inf`` spellings and
``printf`` error markers (``%!d(float64=1.5)``) are Go's and are reproduced here.
Go's time formats (``time.Time.String``, its JSON form) are times and live in
``sidecar.core.times``; Go's ``time.Duration.String`` in ``sidecar.core.durations``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from decimal import Decimal

__all__ = [
    "go_float",
    "go_format_e",
    "go_labels",
    "go_percent_g",
    "go_quote",
    "go_sprint",
    "go_sprint_all",
    "go_sprintf",
    "go_title",
    "go_type",
    "go_unquote",
]

_SPEC = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d*))?(.)?", re.DOTALL)


def _special(v: float) -> str | None:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return None


def _digits(v: float) -> tuple[str, int]:
    """Shortest round-trip digits of ``abs(v)`` and the decimal point position."""
    t = Decimal(repr(abs(v))).as_tuple()
    digits = "".join(map(str, t.digits))
    dp = len(digits) + int(t.exponent)
    stripped = digits.rstrip("0") or "0"
    return stripped, dp


def _exp(e: int) -> str:
    return f"{'-' if e < 0 else '+'}{abs(e):02d}"


def go_float(v: float) -> str:
    """``fmt.Sprint(v)`` / ``%v`` / ``%g`` of a float64: shortest digits, Go's exponent rule."""
    special = _special(v)
    if special is not None:
        return special
    sign = "-" if math.copysign(1.0, v) < 0 else ""
    if v == 0:
        return sign + "0"
    digits, dp = _digits(v)
    exp = dp - 1
    # strconv: with the shortest precision the exponent form is used outside [-4, 6).
    if exp < -4 or exp >= 6:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{_exp(exp)}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def go_format_e(v: float, upper: bool = False) -> str:
    """``strconv.FormatFloat(v, 'e' or 'E', -1, 64)``: shortest mantissa, 2-digit exponent."""
    special = _special(v)
    if special is not None:
        return special
    sign = "-" if math.copysign(1.0, v) < 0 else ""
    if v == 0:
        digits, exp = "0", 0
    else:
        digits, dp = _digits(v)
        exp = dp - 1
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mant}{'E' if upper else 'e'}{_exp(exp)}"


def go_percent_g(v: float, precision: int) -> str:
    """``fmt.Sprintf("%.<precision>g", v)``: C's ``%g`` except for NaN and infinities."""
    special = _special(v)
    return special if special is not None else f"{v:.{precision}g}"


def go_quote(s: str) -> str:
    """``strconv.Quote``: Go escapes, printable runes kept as they are."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


_UNESCAPES = {escape[1]: ch for ch, escape in _ESCAPES.items()}
_ESCAPE = re.compile(
    r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.|\Z)", re.DOTALL
)


def go_unquote(body: str, quote: str) -> str:
    """The text of a Go-quoted literal between its ``quote`` characters (``strconv``'s
    escapes; only ``quote`` itself may be escaped among the quotes).

    Raises ``ValueError`` with the first escape Go rejects: an unknown letter, too few
    digits, a surrogate or a rune past U+10FFFF, an octal value past 255.
    """

    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        if e in _UNESCAPES:
            return _UNESCAPES[e]
        if e in ("\\", quote):
            return e
        if len(e) > 1:
            v = int(e[1:], 16) if e[0] in "xuU" else int(e, 8)
            if v <= 0x10FFFF and not 0xD800 <= v <= 0xDFFF and (e[0] in "xuU" or v <= 0o377):
                return chr(v)
        raise ValueError(f"\\{e}")

    return _ESCAPE.sub(one, body)


def go_labels(labels: Sequence[tuple[str, str]]) -> str:
    """``labels.Labels.String()``: ``{a="1", b="2"}`` in the given (sorted) order."""
    return "{" + ", ".join(f"{k}={go_quote(v)}" for k, v in labels) + "}"


def _is_separator(ch: str) -> bool:
    if ch.isascii():
        return not (ch.isalnum() or ch == "_")
    if ch.isalpha() or unicodedata.category(ch) == "Nd":
        return False
    return ch.isspace()


def go_title(s: str) -> str:
    """``strings.Title``: upper-case the first letter of each word, leave the rest alone."""
    out = []
    prev = " "
    for ch in s:
        if _is_separator(prev):
            up = ch.title()
            out.append(up if len(up) == 1 else ch)
        else:
            out.append(ch)
        prev = ch
    return "".join(out)


def go_type(value: object) -> str:
    """The Go type name a template value would have, for error texts."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map[string]string"
    if value is None:
        return "<nil>"
    return type(value).__name__


def go_sprint(value: object) -> str:
    """``fmt.Sprint`` of one template value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_sprint(value[k])}" for k in sorted(value)) + "]"
    if value is None:
        return "<nil>"
    return str(value)


def go_sprint_all(values: Sequence[object]) -> str:
    """``fmt.Sprint`` of several operands: a space between two when neither is a string."""
    out = []
    for i, a in enumerate(values):
        if i and not isinstance(a, str) and not isinstance(values[i - 1], str):
            out.append(" ")
        out.append(go_sprint(a))
    return "".join(out)


def _pad(text: str, flags: str, width: str | None) -> str:
    if not width:
        return text
    return text.ljust(int(width)) if "-" in flags else text.rjust(int(width))


def _bad(verb: str, value: object) -> str:
    if value is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({go_type(value)}={go_sprint(value)})"


def _format_one(flags: str, width: str | None, prec: str | None, verb: str, value: object) -> str:
    spec_flags = "+" if "+" in flags else (" " if " " in flags else "")
    zero = "0" if "0" in flags and "-" not in flags else ""
    align = "<" if "-" in flags else ""
    w = width or ""
    p = f".{prec or 0}" if prec is not None else ""
    if isinstance(value, float) and not isinstance(value, bool):
        if verb not in "eEfFgGv":
            return _bad(verb, value)
        special = _special(value)
        if special is not None:
            if "+" in flags and special == "NaN":
                special = "+NaN"
            return _pad(special, flags, width)
        if verb in "gv" and prec is None:
            text = go_float(value)
            if "+" in flags and not text.startswith("-"):
                text = "+" + text
            return _pad(text, flags, width)
        pyverb = "f" if verb == "F" else verb
        if prec is None:
            p = ".6"
        return format(value, f"{align}{spec_flags}{zero}{w}{p}{pyverb}")
    if isinstance(value, bool):
        if verb not in "tv":
            return _bad(verb, value)
        return _pad("true" if value else "false", flags, width)
    if isinstance(value, int):
        conv = {"d": "d", "v": "d", "b": "b", "o": "o", "x": "x", "X": "X"}
        if verb == "c":
            return _pad(chr(value), flags, width)
        if verb == "q":
            return _pad("'" + go_quote(chr(value))[1:-1].replace("'", "\\'") + "'", flags, width)
        if verb not in conv:
            return _bad(verb, value)
        return format(value, f"{align}{spec_flags}{zero}{w}{conv[verb]}")
    if isinstance(value, str):
        if verb in "sv":
            text = value[: int(prec)] if prec is not None and prec != "" else value
            return _pad(text, flags, width)
        if verb == "q":
            return _pad(go_quote(value), flags, width)
        if verb in "xX":
            hexed = value.encode().hex()
            return _pad(hexed.upper() if verb == "X" else hexed, flags, width)
        return _bad(verb, value)
    if verb == "v":
        return _pad(go_sprint(value), flags, width)
    return _bad(verb, value)


def go_sprintf(fmt: str, args: Sequence[object]) -> str:
    """``fmt.Sprintf`` for the verbs templates use: d s v f e g q x t c and ``%%``."""
    out: list[str] = []
    pos = 0
    argi = 0
    for m in _SPEC.finditer(fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width, prec, verb = m.groups()
        if verb is None:
            out.append("%!(NOVERB)")
            continue
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_one(flags, width, prec, verb, args[argi]))
        argi += 1
    out.append(fmt[pos:])
    if argi < len(args):
        extra = ", ".join(
            f"{go_type(a)}={go_sprint(a)}" if a is not None else "<nil>" for a in args[argi:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
