"""An append-only journal of JSON lines on disk: written and fsynced before we acknowledge.

Each line is one self-contained entry (``entries`` says what they mean and how they are
versioned), so an entry is written whole or, when the process dies mid-write, leaves a
damaged last line that replay skips with a ``journal.corrupt_line`` warning: a delivery
is journaled entirely or not at all. A line that is JSON but not an entry of a known
shape and version is skipped with ``journal.corrupt_entry``. This module appends, reads
back, and compacts: the live state replaces the journal through ``write_atomic``, so
that a crash at any point leaves either the old journal or the new one.

Disk I/O runs in a worker thread (``in_thread``) under one lock, so that the event loop
keeps serving while fsync waits for the disk and appends land in the order asked.

A state directory that is full or read-only is a degraded state, never a crash: each
refused write is a ``JournalError`` (the caller answers 503) and is counted, ``problem``
says why for ``/readyz``, and ``watch`` probes the directory until a write succeeds
again. The directory is locked (``lock_state_dir``) so that a second sidecar on it
refuses to start instead of rewriting this one's journal.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from sidecar.actions.entries import Entry, decode, encode
from sidecar.core.durable import in_thread, write_all, write_atomic
from sidecar.core.errors import JournalError, SidecarError, clip
from sidecar.core.loops import pause

__all__ = ["JOURNAL_FILE", "Journal", "JournalWatch", "StateDirLocked", "lock_state_dir"]

log = structlog.get_logger(__name__)

JOURNAL_FILE = "journal.jsonl"

_json = msgspec.json.Decoder()


class Journal:
    """One journal file under ``state_dir``: ``replay`` it, then ``append`` to it."""

    def __init__(self, state_dir: Path, registry: CollectorRegistry) -> None:
        self.path = state_dir / JOURNAL_FILE
        self.entries = 0
        """Lines in the file now: the dispatcher compacts past a bound."""
        self.size = 0
        """Bytes in the file now (as far as this process wrote them)."""
        self.compacted_size = 0
        """Bytes of the last compaction: the live state's size."""
        self._lock = asyncio.Lock()
        self._fd: int | None = None
        self._torn = False
        self.problem: str | None = None
        """Why the last write failed, until one succeeds: the state directory is full or
        read-only, and actions are refused."""
        self._corrupt = Counter(
            "leak_sidecar_journal_corrupt_lines_total",
            "Journal lines skipped at replay because they were damaged, truncated, or not "
            "an entry of a known shape and version.",
            registry=registry,
        )
        Gauge(
            "leak_sidecar_journal_writable",
            "1 while the journal can be written; 0 while the state directory refuses "
            "writes (full or read-only) and actions are refused with 503.",
            registry=registry,
        ).set_function(lambda: 0 if self.problem else 1)
        self._failures = Counter(
            "leak_sidecar_journal_write_failures_total",
            "Journal writes that failed; the deliveries they carried were refused with 503.",
            registry=registry,
        )

    def replay(self) -> Iterator[Entry]:
        """Every readable entry in order, as the current version; damaged ones are skipped."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise JournalError(self.path, f"cannot read journal {self.path}: {exc}") from exc
        for number, line in enumerate(data.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                obj = _json.decode(line)
            except msgspec.DecodeError as exc:
                obj, error = None, str(exc)
            else:
                error = "" if isinstance(obj, dict) else "not a JSON object"
            if error:
                self._corrupt.inc()
                log.warning(
                    "journal.corrupt_line", path=str(self.path), line=number, error=clip(error, 200)
                )
                continue
            try:
                entries = decode(obj)
            except (msgspec.ValidationError, ValueError, OverflowError) as exc:
                self._corrupt.inc()
                log.warning(
                    "journal.corrupt_entry", path=str(self.path), line=number, error=clip(exc, 200)
                )
                continue
            yield from entries

    async def append(self, entry: Entry) -> None:
        """Write one entry and fsync it; ``JournalError`` when the disk refused."""
        data = encode(entry) + b"\n"
        async with self._lock:
            try:
                await in_thread(self._write, data)
            except OSError as exc:
                raise JournalError(self.path, f"cannot write journal {self.path}: {exc}") from exc
            self.entries += 1
            self.size += len(data)

    def _write(self, data: bytes) -> None:
        # Runs in the worker thread; it keeps its own books, even for a cancelled caller.
        try:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            write_all(self._fd, b"\n" + data if self._torn else data)
            os.fsync(self._fd)
        except OSError as exc:
            self._failures.inc()
            # The failed write may have left half a line: start the next one afresh.
            self._torn = True
            self.problem = f"cannot write the journal: {exc.strerror or exc}"
            log.error("journal.write_failed", path=str(self.path), error=str(exc))
            raise
        self._torn = False
        self._recovered()

    async def rewrite(self, live: Callable[[], list[Entry]]) -> None:
        """Replace the journal with the entries ``live()`` returns, atomically.

        ``live`` is called under the lock, so no append lands between the snapshot and
        the swap.
        """
        async with self._lock:
            entries = live()
            data = b"".join(encode(e) + b"\n" for e in entries)
            try:
                await in_thread(self._swap, data)
            except OSError as exc:
                raise JournalError(self.path, f"cannot compact journal {self.path}: {exc}") from exc
            self.entries = len(entries)
            self.size = self.compacted_size = len(data)
            log.info("journal.compacted", path=str(self.path), entries=len(entries))

    def _swap(self, data: bytes) -> None:
        # Runs in the worker thread, as _write.
        try:
            write_atomic(self.path, data)
        except OSError as exc:
            self._failures.inc()
            self.problem = f"cannot compact the journal: {exc.strerror or exc}"
            log.error("journal.compaction_failed", path=str(self.path), error=str(exc))
            raise
        self._recovered()
        # Appends go on in the new file.
        self._close_fd()
        self._torn = False

    def _recovered(self) -> None:
        if self.problem is not None:
            log.warning("journal.writable_again", path=str(self.path))
            self.problem = None

    async def watch(self, stop: asyncio.Event, interval: float) -> None:
        """While writes fail, probe the state directory every ``interval`` until ``stop``:
        ``problem`` clears as soon as a write would succeed, without waiting for one."""
        while not await pause(stop, interval):
            if self.problem is not None:
                async with self._lock:
                    await in_thread(self._probe)

    def _probe(self) -> None:
        probe = self.path.with_name(".write-probe")
        try:
            write_atomic(probe, b"ok\n")
            probe.unlink()
        except OSError as exc:
            self.problem = f"cannot write the state directory: {exc.strerror or exc}"
            return
        self._recovered()

    async def close(self) -> None:
        """Close the file once any write in progress is done; the next append reopens it."""
        async with self._lock:
            self._close_fd()

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class JournalWatch:
    """The journal's ``watch`` as a supervised loop."""

    def __init__(self, journal: Journal, interval: float) -> None:
        self._journal = journal
        self._interval = interval

    async def run(self, stop: asyncio.Event) -> None:
        """Probe a refusing state directory every ``interval`` until ``stop``."""
        await self._journal.watch(stop, self._interval)


class StateDirLocked(SidecarError):
    """Another process holds the state directory: two sidecars would rewrite one journal."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        super().__init__(
            f"state_dir: {state_dir} is in use by another leak-sidecar process; "
            "each sidecar needs a state directory of its own"
        )


def lock_state_dir(state_dir: Path) -> int | None:
    """Lock ``state_dir`` for this process; returns the descriptor to close at exit.

    An exclusive ``flock`` on the directory itself, so that it works on a full or
    read-only volume where no lock file could be created; ``StateDirLocked`` when another
    process holds it. None when the directory cannot be made or opened: the sidecar then
    starts degraded (its writes fail and are refused), there being nothing to protect.
    """
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        log.error("journal.state_dir_unusable", path=str(state_dir), error=str(exc))
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise StateDirLocked(state_dir) from None
        log.error("journal.state_dir_unlockable", path=str(state_dir), error=str(exc))
        return None
    return fd
