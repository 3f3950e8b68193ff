"""Series descriptions of rule unit tests: ``up{job="a"}`` and ``1+2x3 _ stale``.

``promtool test rules`` reads ``input_series`` with PromQL's series description grammar
(``promql/parser/generated_parser.y`` of Prometheus 2.42) and ``exp_samples`` labels
with ``ParseMetric``; both are reproduced here:

- ``a`` one value; ``_`` one omitted step; ``_xn`` n omitted steps;
- ``axn`` n+1 copies of ``a``; ``a+bxn`` / ``a-bxn`` n+1 values from ``a`` adding ``b``
  each step, by repeated float addition as Go does (``0+0.1x3`` ends on
  ``0.30000000000000004``, not ``0.3``);
- ``stale`` a staleness marker; numbers as the PromQL lexer takes them (``1e3``, ``.5``,
  ``Inf``, ``NaN``, a leading-zero integer is octal as Go's ``ParseInt(s, 0, 64)``).
"""

from __future__ import annotations

import re

from sidecar.core.errors import RuleError
from sidecar.core.model import STALE_NAN, LabelSet
from sidecar.gocompat.gofmt import go_unquote
from sidecar.rules.promql.series_syntax import explain_series
from sidecar.rules.promql.syntax_errors import explain_metric

__all__ = ["MAX_POINTS", "parse_metric", "parse_series", "parse_values"]

MAX_POINTS = 1_000_000
"""Values one series description may expand to; a typo like ``1x1e9`` must not eat memory."""

_NUM = r"(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[iI][nN][fF]|[nN][aA][nN])"
_ITEM = re.compile(
    rf"^(?:(?P<blank>_)(?:x(?P<bn>[0-9]+))?"
    rf"|(?P<v>[+-]?{_NUM}|stale)(?:(?P<step>[+-]{_NUM})?x(?P<n>[0-9]+))?)$"
)
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|`[^`]*`')


def _number(text: str) -> float:
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if re.fullmatch(r"0[0-7]+", body):
        return sign * int(body, 8)
    return sign * float(body)


def parse_values(text: str) -> list[float | None]:
    """Expand a value sequence; ``None`` is an omitted step."""
    out: list[float | None] = []
    for item in text.split():
        m = _ITEM.match(item)
        if m is None:
            raise RuleError(
                f'invalid series value {item!r}: expected e.g. "1", "1+2x3", "_x2", "stale"'
            )
        if m.group("blank"):
            count = int(m.group("bn")) if m.group("bn") else 1
            _check(len(out) + count)
            out.extend([None] * count)
            continue
        v = STALE_NAN if m.group("v") == "stale" else _number(m.group("v"))
        if m.group("n") is None:
            out.append(v)
            continue
        n = int(m.group("n"))
        _check(len(out) + n + 1)
        step = _number(m.group("step")) if m.group("step") else 0.0
        for _ in range(n + 1):
            out.append(v)
            v += step
    return out


def _check(n: int) -> None:
    if n > MAX_POINTS:
        raise RuleError(f"series expands to more than {MAX_POINTS} values")


def _unquote(s: str) -> str:
    if s[0] == "`":
        return s[1:-1]
    try:
        return go_unquote(s[1:-1], s[0])
    except ValueError as exc:
        raise RuleError(f"invalid escape {exc} in {s}") from None


def _metric(text: str) -> tuple[LabelSet, int]:
    """Parse ``name{a="b", ...}`` at the start of ``text``; the labels and where it ended."""
    labels: dict[str, str] = {}
    i = len(text) - len(text.lstrip())
    m = _IDENT.match(text, i)
    if m:
        labels["__name__"] = m.group()
        i = m.end()
    j = i
    while j < len(text) and text[j] in " \t":
        j += 1
    if j < len(text) and text[j] == "{":
        i = j + 1
        while True:
            i = _skip(text, i)
            if text.startswith("}", i):
                i += 1
                break
            lm = _LABEL.match(text, i)
            if not lm:
                raise RuleError(f"unexpected character in label set at {text[i : i + 10]!r}")
            i = _skip(text, lm.end())
            if not text.startswith("=", i) or text.startswith("=~", i):
                raise RuleError(f'expected "=" after label {lm.group()!r}')
            i = _skip(text, i + 1)
            sm = _STRING.match(text, i)
            if not sm:
                raise RuleError(f"expected a quoted string for label {lm.group()!r}")
            if lm.group() in labels:
                raise RuleError(f"label {lm.group()!r} given twice")
            labels[lm.group()] = _unquote(sm.group())
            i = _skip(text, sm.end())
            if text.startswith(",", i):
                i += 1
            elif not text.startswith("}", i):
                raise RuleError(f"expected , or }} in label set at {text[i : i + 10]!r}")
    elif not m:
        raise RuleError(f"expected a metric name or a label set, got {text.strip()[:40]!r}")
    return tuple(sorted((k, v) for k, v in labels.items() if v)), i


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _read_metric(text: str) -> tuple[LabelSet, int]:
    try:
        return _metric(text)
    except RuleError:
        # Prometheus's own words and position, where its grammar says what is wrong.
        message = explain_metric(text)
        if message is None:
            raise
        raise RuleError(message) from None


def parse_metric(text: str) -> LabelSet:
    """``ParseMetric``: ``name{a="b"}`` or ``{__name__="name", a="b"}``, nothing after; an
    empty text is the empty label set, as in promtool (``exp_samples: [{value: 1}]``)."""
    if not text.strip():
        return ()
    labels, end = _read_metric(text)
    if text[end:].strip():
        message = explain_metric(text)
        if message is not None:
            raise RuleError(message)
        raise RuleError(f"unexpected {text[end:].strip()[:40]!r} after the metric")
    return labels


def parse_series(series: str, values: str) -> tuple[LabelSet, list[float | None]]:
    """One ``input_series`` entry: its labels and expanded values."""
    message = explain_series(series, values)
    if message is not None:
        raise RuleError(message)  # promtool's words and position for the whole line
    labels, end = _read_metric(series)
    if series[end:].strip():
        raise RuleError(f"unexpected {series[end:].strip()[:40]!r} after the metric")
    return labels, parse_values(values)
