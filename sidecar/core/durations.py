"""Durations: Prometheus's syntax wherever a person reads or writes one; Go's for promtool's.

Two formats, on purpose:

- Prometheus's ``model.Duration`` (``90s`` reads as 1m30s and prints as ``1m30s``;
  ``86400s`` prints as ``1d``): units ``y w d h m s ms``, largest first, each at most
  once; ``0`` alone is allowed; a year is 365 days. Config values, rule files' ``for``
  and ``interval``, promtool test files' ``eval_time``, template ``parseDuration``, and
  every duration the sidecar prints for a person (config errors, the status page, log
  and error texts, the rule-test report's eval times) use it. Parsing follows Prometheus
  2.42's (common v0.39) ``model.ParseDuration``, its error texts included, so a rule
  file is accepted or refused here exactly as promtool does.
- Go's ``time.Duration.String`` (``1h0m0s``, ``1m30.5s``): only where promtool prints a
  Go duration, the evaluation time in its rule-error failure line (``go_duration``).

Rule durations are integer milliseconds (``*_ms``), as Prometheus keeps times; config
durations are float seconds (``parse_duration``/``format_duration``).
"""

from __future__ import annotations

import re

__all__ = [
    "MAX_DURATION_MS",
    "format_duration",
    "format_duration_ms",
    "go_duration",
    "parse_duration",
    "parse_duration_ms",
]

MAX_DURATION_MS = (2**63 - 1) // 1_000_000
"""The longest duration Prometheus accepts (about 292 years): Go's ``time.Duration`` is
nanoseconds in an int64."""

# Prometheus's durationRE. [0-9], not \d (which takes any Unicode digit), and fullmatch,
# not $ (which lets a trailing newline through): Go's regexp means neither.
_PATTERN = re.compile(
    r"(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?"
    r"(?:([0-9]+)ms)?"
)
_DAY_MS = 86_400_000
# (unit, milliseconds, printed only when it divides the whole duration): 90d reads
# better than 12w6d, so years and weeks print only when exact.
_UNITS = (
    ("y", 365 * _DAY_MS, True),
    ("w", 7 * _DAY_MS, True),
    ("d", _DAY_MS, False),
    ("h", 3_600_000, False),
    ("m", 60_000, False),
    ("s", 1000, False),
    ("ms", 1, False),
)
# More digits than this (after leading zeros) overflow Go's strconv.Atoi at any unit.
_MAX_DIGITS = 19


def parse_duration_ms(text: str) -> int:
    """A Prometheus duration (``0``, ``500ms``, ``90s``, ``1h30m``) in milliseconds.

    Raises ``ValueError`` with Prometheus's text: ``empty duration string``,
    ``not a valid duration string: "<text>"`` or ``duration out of range``.
    """
    if text == "0":
        return 0
    if text == "":
        raise ValueError("empty duration string")
    m = _PATTERN.fullmatch(text)
    if m is None:
        raise ValueError(f'not a valid duration string: "{text}"')
    ms = 0
    for digits, (_, unit, _) in zip(m.groups(), _UNITS, strict=True):
        if digits is None:
            continue
        if len(digits.lstrip("0")) > _MAX_DIGITS:
            raise ValueError("duration out of range")
        ms += int(digits) * unit
    if ms > MAX_DURATION_MS:
        raise ValueError("duration out of range")
    return ms


def parse_duration(text: str) -> float:
    """A Prometheus duration in seconds, computed as template ``parseDuration`` does
    (``float64(ns) / 1e9``); ``ValueError`` as ``parse_duration_ms``."""
    return float(parse_duration_ms(text) * 1_000_000) / 1e9


def format_duration_ms(ms: int) -> str:
    """Prometheus's ``model.Duration.String``: ``90000`` -> ``1m30s``, ``86400000`` -> ``1d``,
    ``0`` -> ``0s``; a negative one gets a ``-``, as Prometheus 3 prints it (2.42 printed
    nothing; no duration the sidecar parses is negative)."""
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    rest = abs(ms)
    out = []
    for name, unit, exact in _UNITS:
        if exact and rest % unit:
            continue
        count, rest = divmod(rest, unit)
        if count:
            out.append(f"{count}{name}")
    return sign + "".join(out)


def format_duration(seconds: float) -> str:
    """Seconds in Prometheus's syntax (``90`` -> ``1m30s``, ``86400`` -> ``1d``), rounded
    to the millisecond, so that a float that should be whole milliseconds prints as such."""
    return format_duration_ms(round(seconds * 1000))


def go_duration(ms: int) -> str:
    """Go's ``time.Duration.String`` of whole milliseconds: ``1m0s``, ``1m30.5s``, ``500ms``,
    ``25h0m0s`` (no days). Only for text promtool prints with Go's ``%v`` of a duration."""
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    if ms < 1000:
        return f"{sign}{ms}ms"
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, frac = divmod(rest, 1000)
    seconds = f"{s}" + (f".{frac:03d}".rstrip("0") if frac else "") + "s"
    if h:
        return f"{sign}{h}h{m}m{seconds}"
    if m:
        return f"{sign}{m}m{seconds}"
    return sign + seconds
