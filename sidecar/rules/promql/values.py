"""The values a query produces, its error type, and Go's float behaviour where Python differs.

Inside the evaluator an instant vector is a list of ``(labels, value)`` tuples (cheap to
build); ``Query.evaluate`` hands the caller ``Sample`` named tuples. Helpers here mirror
the Go functions Prometheus 2.42 calls (``math.Mod``, ``math.Floor``,
``strconv.FormatFloat``) where Python's versions raise or print differently; Go's other
formatting is ``sidecar.gocompat.gofmt``'s.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from functools import lru_cache
from math import isnan
from typing import NamedTuple

from sidecar.core.errors import RuleError
from sidecar.core.model import LabelSet

__all__ = [
    "LOOKBACK_MS",
    "MEMO_SIZE",
    "NAME",
    "Elem",
    "PromQLError",
    "Sample",
    "Vector",
    "check_distinct",
    "drop_name",
    "format_float_f",
    "go_ceil",
    "go_div",
    "go_floor",
    "go_mod",
    "go_sqrt",
    "valid_label_name",
]

LOOKBACK_MS = 300_000
"""Prometheus's default ``--query.lookback-delta``: an instant selector sees a sample up
to 5 minutes old (inclusive)."""

NAME = "__name__"


class Sample(NamedTuple):
    """One element of an instant vector: its label set (``__name__`` included when kept)
    and its value."""

    labels: LabelSet
    value: float


Vector = list[Sample]
"""An instant vector as ``Query.evaluate`` returns it."""

Elem = tuple[LabelSet, float]
"""An instant-vector element inside the evaluator."""


class PromQLError(RuleError):
    """A query cannot be compiled (syntax, unsupported construct) or evaluated.

    ``constructs`` names every unsupported construct found at compile time (empty for
    syntax and evaluation errors), so ``check-rules`` can list them all at once.
    """

    def __init__(self, message: str, *, expr: str = "", constructs: tuple[str, ...] = ()) -> None:
        self.expr = expr
        self.constructs = constructs
        super().__init__(message)


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def valid_label_name(name: str) -> bool:
    """Prometheus 2.42's label name alphabet (``model.LabelName.IsValid``)."""
    return _LABEL_NAME.fullmatch(name) is not None


MEMO_SIZE = 50_000
"""Entries in each label-set memo: more than the series a sidecar holds, so a running
engine computes a relabelling once per series, not once per evaluation."""


@lru_cache(maxsize=MEMO_SIZE)
def drop_name(labels: LabelSet) -> LabelSet:
    """The label set without ``__name__`` (memoised: the same series come back each cycle)."""
    return tuple(p for p in labels if p[0] != NAME)


def check_distinct(vec: list[Elem]) -> None:
    """Prometheus's ``ContainsSameLabelset`` check after an operation that relabels."""
    if len(vec) > 1 and len({e[0] for e in vec}) != len(vec):
        raise PromQLError("vector cannot contain metrics with the same labelset")


def go_div(x: float, y: float) -> float:
    """Go's float division: ±Inf or NaN for a zero divisor where Python raises."""
    if y == 0:
        if x == 0 or isnan(x):
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def go_sqrt(x: float) -> float:
    """``math.Sqrt``: NaN for a negative argument where Python raises."""
    return math.sqrt(x) if x >= 0 or isnan(x) else math.nan


def go_mod(x: float, y: float) -> float:
    """Go's ``math.Mod``: NaN where Python's ``fmod`` raises (zero divisor, infinite x)."""
    if y == 0 or math.isinf(x) or isnan(x) or isnan(y):
        return math.nan
    return math.fmod(x, y)


def go_floor(x: float) -> float:
    """``math.Floor`` keeping floats, infinities, NaN and the sign of zero."""
    if not math.isfinite(x):
        return x
    return math.copysign(float(math.floor(x)), x) if x == 0 else float(math.floor(x))


def go_ceil(x: float) -> float:
    """``math.Ceil`` keeping floats, infinities, NaN and the sign of zero (``ceil(-0.5)`` is -0)."""
    if not math.isfinite(x):
        return x
    r = float(math.ceil(x))
    return math.copysign(0.0, x) if r == 0 else r


def format_float_f(v: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: shortest round-trip digits, no exponent."""
    if isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    s = format(Decimal(repr(v)), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s
