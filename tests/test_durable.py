"""Durable files: atomic replacement with fsyncs, and disk work a cancellation cannot cut."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from sidecar.core.durable import append_durably, in_thread, write_atomic


def test_append_durably_writes_every_byte_then_syncs_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short write goes on from where it stopped; one fdatasync follows the whole of it."""
    calls: list[str] = []
    real_write, real_fdatasync = os.write, os.fdatasync

    def short_write(fd: int, data: bytes | memoryview) -> int:
        calls.append(f"write {len(data)}")
        return real_write(fd, bytes(data)[:4])

    def fdatasync(fd: int) -> None:
        calls.append("fdatasync")
        real_fdatasync(fd)

    monkeypatch.setattr(os, "write", short_write)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        append_durably(fd, b"first\n")
        append_durably(fd, b"ab\n")
    finally:
        os.close(fd)
    assert calls == ["write 6", "write 2", "fdatasync", "write 3", "fdatasync"]
    assert path.read_bytes() == b"first\nab\n"


def test_write_atomic_fsyncs_the_file_then_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new bytes are fsynced before the rename and the directory after it; no temp is left."""
    target = tmp_path / "state" / "f.json"
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        calls.append(f"rename {Path(src).name} -> {Path(dst).name}")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_atomic(target, b"old")
    calls.clear()
    write_atomic(target, b"new")
    assert calls == ["fsync file", "rename f.json.tmp -> f.json", "fsync dir"]
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json"]
    assert oct(target.stat().st_mode & 0o777) == "0o600"


def test_failed_write_atomic_keeps_the_old_file_and_removes_its_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write the disk refuses raises OSError; the old content stays whole, no temp remains."""
    target = tmp_path / "f.json"
    write_atomic(target, b"old")

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=r"^\[Errno 28\] No space left on device$"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]


async def test_in_thread_runs_off_the_loop_and_returns_the_result() -> None:
    """The work runs in a worker thread; its return value comes back to the caller."""
    assert await in_thread(lambda: threading.current_thread() is threading.main_thread()) is False
    assert await in_thread(int, "42") == 42


async def test_cancelled_caller_waits_for_the_thread_then_is_cancelled() -> None:
    """Cancelling the caller lets the work finish first, and the caller ends cancelled even
    when the work failed."""
    entered = threading.Event()
    finished: list[str] = []

    def work() -> None:
        entered.set()
        time.sleep(0.2)
        finished.append("done")
        raise OSError(5, "Input/output error")

    task = asyncio.create_task(in_thread(work))
    await asyncio.to_thread(entered.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished == ["done"]
