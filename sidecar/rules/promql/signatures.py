"""Prometheus 2.42's PromQL function signatures, and a call's type errors in its words.

Which functions 2.42 knows, how many arguments each takes (fixed, an optional last one,
or ``label_join``'s trailing strings), the type of each argument and of the result, as
Prometheus's ``parser/functions.go`` lists them; ``check_call`` raises what its parser
says of a call that breaks them (``unknown function with name "f"``,
``expected 1 argument(s) in call to "rate", got 2``, ``expected type range vector in
call to function "rate", got instant vector``). The grammar around the call is
``syntax_errors``'s; this is only about what a function accepts.
"""

from __future__ import annotations

from collections.abc import Sequence

from sidecar.gocompat.gofmt import go_quote
from sidecar.rules.promql.lexer import ParseFailure, Tok

__all__ = ["check_call"]

_ARGS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        ("rate", "increase", "delta", "irate", "idelta", "resets", "changes", "deriv",
         "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
         "count_over_time", "last_over_time", "stddev_over_time", "stdvar_over_time",
         "present_over_time", "absent_over_time"),
        ("range vector",),
    ),
    "quantile_over_time": ("scalar", "range vector"),
    "predict_linear": ("range vector", "scalar"),
    "holt_winters": ("range vector", "scalar", "scalar"),
    "histogram_quantile": ("scalar", "instant vector"),
    "histogram_fraction": ("scalar", "scalar", "instant vector"),
    "clamp": ("instant vector", "scalar", "scalar"),
    "clamp_min": ("instant vector", "scalar"),
    "clamp_max": ("instant vector", "scalar"),
    "label_replace": ("instant vector", "string", "string", "string", "string"),
    "label_join": ("instant vector", "string", "string", "string"),
    "round": ("instant vector", "scalar"),
    "vector": ("scalar",),
    "time": (),
    "pi": (),
}  # fmt: skip
_SCALAR_FUNCS = frozenset({"scalar", "time", "pi"})
_OPTIONAL_LAST = frozenset(
    {"days_in_month", "day_of_month", "day_of_week", "day_of_year", "hour", "minute", "month",
     "year", "round"}
)  # fmt: skip
_FUNCTIONS = frozenset(
    {*_ARGS, "abs", "absent", "acos", "acosh", "asin", "asinh", "atan", "atanh", "ceil", "cos",
     "cosh", "days_in_month", "day_of_month", "day_of_week", "day_of_year", "deg", "exp",
     "floor", "histogram_count", "histogram_sum", "hour", "ln", "log10", "log2", "minute",
     "month", "rad", "scalar", "sgn", "sin", "sinh", "sort", "sort_desc", "sqrt", "tan", "tanh",
     "timestamp", "year"}
)  # fmt: skip
"""Prometheus 2.42's functions."""


def check_call(name: Tok, kinds: Sequence[tuple[int, str]]) -> str:
    """The type a call to ``name`` returns, given each argument's position and type;
    ``ParseFailure`` with Prometheus's message when the call breaks its signature."""
    if name.val not in _FUNCTIONS:
        raise ParseFailure(name.pos, f"unknown function with name {go_quote(name.val)}")
    want = _ARGS.get(name.val, ("instant vector",))
    lo, hi = len(want), len(want)
    if name.val in _OPTIONAL_LAST:
        lo -= 1
    elif name.val == "label_join":
        lo, hi = lo - 1, 1 << 30
    fn = go_quote(name.val)
    if lo == hi and len(kinds) != lo:
        raise ParseFailure(name.pos, f"expected {lo} argument(s) in call to {fn}, got {len(kinds)}")
    if len(kinds) < lo:
        raise ParseFailure(
            name.pos, f"expected at least {lo} argument(s) in call to {fn}, got {len(kinds)}"
        )
    if len(kinds) > hi:
        raise ParseFailure(
            name.pos, f"expected at most {hi} argument(s) in call to {fn}, got {len(kinds)}"
        )
    if len(kinds) > len(want):  # label_join's trailing strings
        want = want + (want[-1],) * (len(kinds) - len(want))
    for (pos, got), exp in zip(kinds, want, strict=False):
        if got != exp and not (exp == "instant vector" and got == "instant vector"):
            raise ParseFailure(
                pos,
                f"expected type {exp} in call to function {go_quote(name.val)}, got {got}",
            )
    return "scalar" if name.val in _SCALAR_FUNCS else "instant vector"
