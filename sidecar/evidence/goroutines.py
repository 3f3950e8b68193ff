"""Go's goroutine dump (``/debug/pprof/goroutine?debug=1``), counted per stack.

The format, as ``runtime/pprof`` writes it::

    goroutine profile: total 12
    5 @ 0x43a0f6 0x4067ec 0x6e8b95
    #	0x6e8b94	main.leakWorkers.func1+0x34	/src/main.go:50

One block per distinct stack: its count, then one ``#`` line per frame, leaf first. The
stack is cut at the first frame that is not the runtime's (``profile.is_runtime``): a
thousand goroutines parked in ``runtime.gopark`` are told apart by the code that parked
them. Lines that fit no part of the format are skipped, counted in ``skipped``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sidecar.evidence.profile import ProfileError, Stack, is_runtime

__all__ = ["GoroutineDump", "parse"]

_HEADER = re.compile(r"^goroutine profile: total (\d+)$")
_BLOCK = re.compile(r"^(\d+) @(?: 0x[0-9a-f]+)*$")
_FRAME = re.compile(r"^#\s+0x[0-9a-f]+\s+(\S+?)(?:\+0x[0-9a-f]+)?\s+\S.*$")


@dataclass(frozen=True, slots=True)
class GoroutineDump:
    """Goroutines per stack, and the total the dump announced."""

    total: int
    stacks: dict[Stack, int]
    skipped: int = 0


def parse(text: str, *, max_frames: int) -> GoroutineDump:
    """Count the goroutines of a debug=1 dump per stack, ``max_frames`` deep from its site."""
    lines = text.splitlines()
    head = _HEADER.match(lines[0].strip()) if lines else None
    if head is None:
        first = lines[0][:80] if lines else ""
        raise ProfileError(
            f"expected a goroutine dump starting 'goroutine profile: total N', got {first!r}"
        )
    stacks: dict[Stack, int] = {}
    count: int | None = None
    frames: list[str] = []
    skipped = 0

    def close() -> None:
        if count is None:
            return
        site = next((i for i, name in enumerate(frames) if not is_runtime(name)), 0)
        key = tuple(frames[site : site + max_frames])
        stacks[key] = stacks.get(key, 0) + count

    for line in lines[1:]:
        if not line.strip():
            continue
        if block := _BLOCK.match(line):
            close()
            count, frames = int(block.group(1)), []
        elif (frame := _FRAME.match(line)) and count is not None:
            frames.append(frame.group(1))
        else:
            skipped += 1
    close()
    return GoroutineDump(int(head.group(1)), stacks, skipped)
