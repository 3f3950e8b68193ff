"""The growth report: per call site, what grew from the healthy baseline to the capture.

Heap: ``inuse_space`` and ``inuse_objects`` summed per site (``profile.site_values``),
the capture minus the baseline, the top ``top`` sites by growth in bytes. Goroutines:
counts per stack (``goroutines.parse``), minus the baseline's, the top ``top`` by growth.
Without a baseline every site grows from zero, and the report says so. A site the
baseline did not have is marked ``new``: a leak that began after the baseline.

``render_text`` writes it as a person reads it, ``Report.to_json`` as a program does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sidecar.evidence.goroutines import GoroutineDump
from sidecar.evidence.profile import SiteValues, Stack

__all__ = ["HEAP_TYPES", "GoroutineGrowth", "HeapGrowth", "Report", "build", "render_text"]

HEAP_TYPES = ("inuse_space", "inuse_objects")
"""The heap profile's sample types the report compares."""


@dataclass(frozen=True, slots=True)
class HeapGrowth:
    """One call site of the heap profile."""

    function: str
    stack: list[str]
    inuse_bytes: int
    inuse_bytes_growth: int
    inuse_objects: int
    inuse_objects_growth: int
    new: bool


@dataclass(frozen=True, slots=True)
class GoroutineGrowth:
    """Goroutines parked at one stack."""

    function: str
    stack: list[str]
    count: int
    growth: int
    new: bool


@dataclass(frozen=True, slots=True)
class Report:
    """What grew, heap and goroutines, from ``baseline_time`` (None: no baseline) on."""

    baseline_time: str | None
    heap_inuse_bytes: int | None
    heap_inuse_bytes_growth: int | None
    heap: list[HeapGrowth]
    goroutines_total: int | None
    goroutines_growth: int | None
    goroutines: list[GoroutineGrowth]
    problems: list[str]
    """What could not be compared, and why (a part not captured, a broken profile)."""

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready dicts and lists."""
        return asdict(self)


def _site(stack: Stack) -> str:
    return stack[0] if stack else "?"


def _heap(now: SiteValues, then: SiteValues | None, top: int) -> tuple[list[HeapGrowth], int, int]:
    before: Mapping[Stack, tuple[int, ...]] = then.sites if then is not None else {}
    rows = []
    for stack, (space, objects) in now.sites.items():
        old_space, old_objects = before.get(stack, (0, 0))
        rows.append(
            HeapGrowth(
                _site(stack),
                list(stack),
                space,
                space - old_space,
                objects,
                objects - old_objects,
                new=then is not None and stack not in before,
            )
        )
    total = sum(v[0] for v in now.sites.values())
    growth = total - sum(v[0] for v in before.values())
    grown = [r for r in rows if r.inuse_bytes_growth > 0 or r.inuse_objects_growth > 0]
    grown.sort(key=lambda r: (-r.inuse_bytes_growth, -r.inuse_objects_growth, r.stack))
    return grown[:top], total, growth


def _goroutines(now: GoroutineDump, then: GoroutineDump | None, top: int) -> list[GoroutineGrowth]:
    before = then.stacks if then is not None else {}
    rows = [
        GoroutineGrowth(
            _site(stack),
            list(stack),
            count,
            count - before.get(stack, 0),
            new=then is not None and stack not in before,
        )
        for stack, count in now.stacks.items()
        if count > before.get(stack, 0)
    ]
    rows.sort(key=lambda r: (-r.growth, r.stack))
    return rows[:top]


def build(
    *,
    heap: SiteValues | None,
    heap_baseline: SiteValues | None,
    goroutines: GoroutineDump | None,
    goroutines_baseline: GoroutineDump | None,
    baseline_time: str | None,
    top: int,
    problems: list[str],
) -> Report:
    """Compare a capture with the baseline; a part that is None was not captured."""
    sites: list[HeapGrowth] = []
    total = growth = None
    if heap is not None:
        sites, total, growth = _heap(heap, heap_baseline, top)
    stacks: list[GoroutineGrowth] = []
    g_total = g_growth = None
    if goroutines is not None:
        stacks = _goroutines(goroutines, goroutines_baseline, top)
        g_total = goroutines.total
        g_growth = g_total - (goroutines_baseline.total if goroutines_baseline else 0)
    return Report(baseline_time, total, growth, sites, g_total, g_growth, stacks, problems)


def _bytes(n: int) -> str:
    size = float(abs(n))
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            text = f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
            return ("-" if n < 0 else "+") + text
        size /= 1024
    raise AssertionError("unreachable")


def render_text(report: Report) -> str:
    """The report as plain text, top sites first."""
    since = report.baseline_time or "nothing (no healthy baseline yet: growth is from zero)"
    out = [f"Growth since the baseline of {since}", ""]
    if report.heap_inuse_bytes is not None:
        out.append(
            f"Heap in use: {report.heap_inuse_bytes} bytes "
            f"({_bytes(report.heap_inuse_bytes_growth or 0)})"
        )
        out.append(f"{'growth':>12} {'objects':>10}  call site")
        for h in report.heap:
            mark = "  [new]" if h.new else ""
            out.append(
                f"{_bytes(h.inuse_bytes_growth):>12} {h.inuse_objects_growth:>+10}  "
                f"{h.function}{mark}"
            )
            out.extend(f"{'':>25}  <- {caller}" for caller in h.stack[1:])
        out.append("")
    if report.goroutines_total is not None:
        out.append(f"Goroutines: {report.goroutines_total} ({report.goroutines_growth or 0:+d})")
        out.append(f"{'growth':>12} {'count':>10}  stack")
        for g in report.goroutines:
            mark = "  [new]" if g.new else ""
            out.append(f"{g.growth:>+12} {g.count:>10}  {g.function}{mark}")
            out.extend(f"{'':>25}  <- {caller}" for caller in g.stack[1:])
        out.append("")
    out.extend(f"Not compared: {p}" for p in report.problems)
    return "\n".join(out).rstrip() + "\n"
