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
Appends are group-committed: entries submitted while a write is on the disk queue up
and go together in the next one, one ``write`` and one ``fdatasync`` for the group
(``leak_sidecar_journal_commits_total`` against ``leak_sidecar_journal_entries_total``).
Each submitter still learns only once its own entry is durable; a failed commit fails
every entry of its group and every one queued behind it, so that nothing decided on
top of a lost entry survives it (``submit``'s ``undo``).

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
from dataclasses import dataclass
from pathlib import Path

import msgspec
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from sidecar.actions.entries import Entry, decode, encode
from sidecar.core.durable import append_durably, in_thread, write_atomic
from sidecar.core.errors import JournalError, SidecarError, clip
from sidecar.core.loops import pause

__all__ = ["JOURNAL_FILE", "Journal", "JournalWatch", "StateDirLocked", "lock_state_dir"]

log = structlog.get_logger(__name__)

JOURNAL_FILE = "journal.jsonl"

_json = msgspec.json.Decoder()

Hook = Callable[[], None]
"""Called on the event loop when a submitted entry became durable, or failed."""


@dataclass(frozen=True, slots=True)
class _Queued:
    data: bytes
    future: asyncio.Future[None]
    durable: Hook | None
    undo: Hook | None


def _call(hook: Hook | None) -> None:
    # A bug in one hook must not leave the rest of the group waiting forever.
    if hook is None:
        return
    try:
        hook()
    except Exception as exc:
        log.error("journal.hook_crashed", exc_info=exc)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


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
        self._queue: list[_Queued] = []
        self._committer: asyncio.Task[None] | None = None
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
        self._commits = Counter(
            "leak_sidecar_journal_commits_total",
            "Group commits: one write and one fsync each, for every entry queued meanwhile.",
            registry=registry,
        )
        self._committed = Counter(
            "leak_sidecar_journal_entries_total",
            "Entries made durable; divided by leak_sidecar_journal_commits_total, the "
            "entries each fsync carried.",
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

    @property
    def queued(self) -> int:
        """Entries submitted and waiting for the next commit (not the one on the disk)."""
        return len(self._queue)

    def submit(
        self, entry: Entry, *, durable: Hook | None = None, undo: Hook | None = None
    ) -> asyncio.Future[None]:
        """Queue one entry for the next group commit; the future is done once it is durable.

        Entries are written in the order submitted. ``durable`` is called as soon as the
        entry is on the disk, before the future resolves and before any entry submitted
        later is reported durable; when the commit fails, ``undo`` is called (the latest
        entry's first) for this entry and for every entry queued behind it, since those
        may have been decided on top of it, and their futures fail with ``JournalError``.
        Both run on the event loop, without a pause between them and the commit.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Nobody may be left waiting for it (a cancelled caller): never "never retrieved".
        future.add_done_callback(_retrieve)
        self._queue.append(_Queued(encode(entry) + b"\n", future, durable, undo))
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit(), name="journal-commit")
        return future

    async def append(self, entry: Entry) -> None:
        """Write one entry and fsync it (with whatever else is queued); ``JournalError``
        when the disk refused."""
        # Shielded: a cancelled caller does not cancel the entry, which is written anyway.
        await asyncio.shield(self.submit(entry))

    async def idle(self) -> None:
        """Wait until every entry submitted so far is written (or failed)."""
        while self._committer is not None:
            await asyncio.wait([self._committer])

    async def _commit(self) -> None:
        """Write what is queued, one write and one fsync for the whole group, until empty."""
        group: list[_Queued] = []
        try:
            async with self._lock:
                while self._queue:
                    group, self._queue = self._queue, []
                    data = b"".join(q.data for q in group)
                    try:
                        await in_thread(self._write, data)
                    except OSError as exc:
                        error = JournalError(self.path, f"cannot write journal {self.path}: {exc}")
                        failed, self._queue, group = group + self._queue, [], []
                        self._fail(failed, error)
                        continue
                    self._succeed(group, len(data))
                    group = []
        except BaseException:
            # Cancelled at shutdown: nobody may wait forever for an answer.
            failed, self._queue = group + self._queue, []
            self._fail(failed, JournalError(self.path, f"journal {self.path} closed"))
            raise
        finally:
            self._committer = None

    def _succeed(self, group: list[_Queued], size: int) -> None:
        """Count a group written and fsynced (``size`` bytes) and answer its callers."""
        self.entries += len(group)
        self.size += size
        self._commits.inc()
        self._committed.inc(len(group))
        for q in group:
            _call(q.durable)
            if not q.future.done():
                q.future.set_result(None)

    @staticmethod
    def _fail(failed: list[_Queued], error: JournalError) -> None:
        for q in reversed(failed):
            _call(q.undo)
        for q in failed:
            if not q.future.done():
                q.future.set_exception(error)

    def _write(self, data: bytes) -> None:
        # Runs in the worker thread; it keeps its own books, even for a cancelled caller.
        start: int | None = None
        try:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            start = os.fstat(self._fd).st_size
            append_durably(self._fd, b"\n" + data if self._torn else data)
        except OSError as exc:
            self._failures.inc()
            if start is not None:  # something may have been written: take it back
                self._torn = not self._cut(start)
            self.problem = f"cannot write the journal: {exc.strerror or exc}"
            log.error("journal.write_failed", path=str(self.path), error=str(exc))
            raise
        self._torn = False
        self._recovered()

    def _cut(self, size: int) -> bool:
        """Cut what a failed write left (whole entries of a failed group too) at ``size``.

        False when that failed too: the next write then starts on a fresh line, and the
        torn one is skipped at replay.
        """
        if self._fd is None:
            return True
        try:
            os.ftruncate(self._fd, size)
        except OSError as exc:
            log.error("journal.truncate_failed", path=str(self.path), error=str(exc))
            return False
        return True

    async def rewrite(self, live: Callable[[], list[Entry]]) -> None:
        """Replace the journal with the entries ``live()`` returns, atomically.

        ``live`` is called under the lock, so no append lands between the snapshot and
        the swap.
        """
        await self.idle()
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
        """Close the file once the queued entries are written; the next append reopens it."""
        await self.idle()
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
