"""Files that survive a crash: written whole or not at all, and never on the event loop.

``write_atomic`` is the one way a state file is replaced (the journal's compaction, the
rules' ``for`` state): the bytes go to a temporary file in the same directory, which is
fsynced, renamed over the target, and then the directory is fsynced, since the rename
is durable only once the directory entry is. A crash at any point leaves either the old
file or the new one, never a mix; a failed write removes its temporary file.

``append_durably`` is the one way an append-only file grows (the journal): the bytes are
written whole, then ``fdatasync`` makes them (and the file's new size) durable; the
journal calls it once for a whole group of entries, which is what makes it cheap.

``in_thread`` runs such blocking disk work in a worker thread, so that the event loop
keeps serving while fsync waits for the disk. A thread cannot be cancelled: a cancelled
caller waits for it to finish before the cancellation goes on, so that a lock the
caller holds is never released while the thread still writes under it, and writes to
one file stay in the order they were asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

__all__ = ["append_durably", "in_thread", "write_all", "write_atomic"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd``.

    ``os.write`` may write less than asked (a signal, a full disk): go on from there.
    """
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def append_durably(fd: int, data: bytes) -> None:
    """Write ``data`` to ``fd`` (opened ``O_APPEND``) and wait until it is on the disk.

    ``fdatasync`` flushes the data and the metadata needed to read it back (the size),
    skipping the rest (times), which ``fsync`` would also flush.
    """
    write_all(fd, data)
    os.fdatasync(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` durably and atomically (``OSError`` when it cannot).

    The temporary file is ``<name>.tmp`` beside ``path``: callers serialise their writes
    to one path, and a temporary file left by a crash is overwritten by the next write.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


async def in_thread(func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """``await asyncio.to_thread(func, ...)`` that a cancellation cannot cut short."""
    task = asyncio.ensure_future(asyncio.to_thread(func, *args, **kwargs))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        # The work goes on in its thread whatever we do: wait for it, then be cancelled.
        # Its failure is dropped here, so work that must record one does so itself.
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()
        raise
