"""Date functions (``year``, ``month``, ``day_of_week``, ``hour``...) in UTC, over the
proleptic Gregorian calendar as Go's ``time`` package computes it, for any year."""

from __future__ import annotations

from collections.abc import Callable
from math import isnan

from sidecar.rules.promql.eval import Ctx, Node
from sidecar.rules.promql.values import Elem, check_distinct, drop_name

__all__ = ["DATE_FUNCS", "DateFunc"]


def _civil(days: int) -> tuple[int, int, int]:
    # Proleptic Gregorian date from days since 1970-01-01 (Howard Hinnant's algorithm).
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def _leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_CUM_DAYS = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def _days_in_month(secs: int) -> float:
    y, m, _ = _civil(secs // 86400)
    return float(29 if m == 2 and _leap(y) else _MONTH_DAYS[m - 1])


def _day_of_year(secs: int) -> float:
    y, m, d = _civil(secs // 86400)
    return float(_CUM_DAYS[m - 1] + d + (1 if m > 2 and _leap(y) else 0))


DATE_FUNCS: dict[str, Callable[[int], float]] = {
    "year": lambda s: float(_civil(s // 86400)[0]),
    "month": lambda s: float(_civil(s // 86400)[1]),
    "day_of_month": lambda s: float(_civil(s // 86400)[2]),
    "day_of_week": lambda s: float((s // 86400 + 4) % 7),
    "day_of_year": _day_of_year,
    "days_in_month": _days_in_month,
    "hour": lambda s: float(s % 86400 // 3600),
    "minute": lambda s: float(s % 3600 // 60),
}
"""Date functions over Unix seconds, in UTC."""


def _go_int64(v: float) -> int:
    # Go's int64(float) truncates; NaN and out-of-range give the "integer indefinite".
    if isnan(v) or not -(2.0**63) <= v < 2.0**63:
        return -(2**63)
    return int(v)


class DateFunc(Node):
    """``year(v=vector(time()))`` and its siblings."""

    distinct_wo_name = True

    def __init__(self, arg: Node | None, f: Callable[[int], float]) -> None:
        self.arg = arg
        self.f = f

    def ev(self, ctx: Ctx) -> list[Elem]:
        """The date field of each value (seconds since the epoch), in UTC."""
        if self.arg is None:
            t = ctx.t
            secs = -(-t // 1000) if t < 0 else t // 1000  # Go's integer division truncates
            return [((), self.f(secs))]
        out = [(drop_name(ls), self.f(_go_int64(v))) for ls, v in self.arg.ev(ctx)]
        if not self.arg.distinct_wo_name:
            check_distinct(out)
        return out
