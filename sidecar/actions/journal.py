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
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import structlog
from prometheus_client import CollectorRegistry, Counter

from sidecar.actions.entries import Entry, decode, encode
from sidecar.core.durable import in_thread, write_all, write_atomic
from sidecar.core.errors import JournalError, clip

__all__ = ["JOURNAL_FILE", "Journal"]

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
        self._corrupt = Counter(
            "leak_sidecar_journal_corrupt_lines_total",
            "Journal lines skipped at replay because they were damaged or truncated.",
            registry=registry,
        )
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
            except (msgspec.ValidationError, ValueError) as exc:
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
            log.error("journal.write_failed", path=str(self.path), error=str(exc))
            raise
        self._torn = False

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
            log.error("journal.compaction_failed", path=str(self.path), error=str(exc))
            raise
        # Appends go on in the new file.
        self._close_fd()
        self._torn = False

    async def close(self) -> None:
        """Close the file once any write in progress is done; the next append reopens it."""
        async with self._lock:
            self._close_fd()

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
