"""Evidence bundles on the state volume, bounded by count and bytes.

Each bundle is a directory ``<state_dir>/evidence/<id>/`` holding the captured files and
``meta.json`` (the alert, the time, each file's size). A bundle is written into a
temporary directory and renamed into place, so a crash leaves a whole bundle or none.
The healthy baseline lives beside them in ``baseline/``, replaced the same way. After
each write the oldest bundles are dropped until at most ``max_bundles`` remain and all of
it, baseline included, fits in ``max_bytes``; the bundle just written is always kept.

Everything here blocks on the disk: the stage calls it through ``core.durable.in_thread``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["BASELINE", "FILES", "Bundles", "new_id", "valid_id"]

FILES = (
    "meta.json",
    "report.txt",
    "report.json",
    "heap.pb.gz",
    "goroutine.txt",
    "allocs.pb.gz",
    "vars.json",
)
"""Every file a bundle may hold; nothing else is served."""
BASELINE = "baseline"
_META = "meta.json"
_ID = re.compile(r"^ev-\d{8}T\d{6}Z-[0-9a-f]{6}$")


def new_id(now: float) -> str:
    """A bundle id that sorts by time: ``ev-20260103T091500Z-1a2b3c``."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"ev-{stamp}-{secrets.token_hex(3)}"


def valid_id(text: str) -> bool:
    """Whether ``text`` is a bundle id (and so safe as a directory name)."""
    return bool(_ID.match(text))


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def _write_dir(target: Path, files: Mapping[str, bytes]) -> None:
    tmp = target.with_name(f".tmp-{target.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700, parents=True)
    for name, data in files.items():
        fd = os.open(tmp / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data) if data else None
            os.fsync(fd)
        finally:
            os.close(fd)
    old = target.with_name(f".old-{target.name}")
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    dirfd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


class Bundles:
    """The bundles under ``root``, newest kept, within ``max_bundles`` and ``max_bytes``."""

    def __init__(self, root: Path, *, max_bundles: int, max_bytes: int) -> None:
        self.root = root
        self.max_bundles = max_bundles
        self.max_bytes = max_bytes

    def ids(self) -> list[str]:
        """The stored bundles' ids, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and valid_id(p.name))

    def meta(self, bundle: str) -> dict[str, Any] | None:
        """A bundle's ``meta.json``, or None when there is no such bundle."""
        if not valid_id(bundle) and bundle != BASELINE:
            return None
        try:
            data = json.loads((self.root / bundle / _META).read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def file(self, bundle: str, name: str) -> Path | None:
        """The path of one of a bundle's files, or None when it has no such file."""
        if not valid_id(bundle) or name not in FILES:
            return None
        path = self.root / bundle / name
        return path if path.is_file() else None

    def read(self, bundle: str, name: str) -> bytes | None:
        """The bytes of a bundle's (or the baseline's) file, or None."""
        if (not valid_id(bundle) and bundle != BASELINE) or name not in FILES:
            return None
        try:
            return (self.root / bundle / name).read_bytes()
        except OSError:
            return None

    def save(self, bundle: str, files: Mapping[str, bytes], meta: Mapping[str, Any]) -> list[str]:
        """Store a bundle, then drop the oldest past the bounds; returns the dropped ids."""
        assert valid_id(bundle)
        self._write(bundle, files, meta)
        return self._trim(keep=bundle)

    def save_baseline(self, files: Mapping[str, bytes], meta: Mapping[str, Any]) -> list[str]:
        """Replace the baseline, then keep the bounds; returns the dropped bundles' ids."""
        self._write(BASELINE, files, meta)
        return self._trim(keep=None)

    def _write(self, name: str, files: Mapping[str, bytes], meta: Mapping[str, Any]) -> None:
        sizes = {n: len(d) for n, d in files.items()}
        record = {**meta, "files": sizes}
        body = json.dumps(record, indent=2, sort_keys=True).encode() + b"\n"
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_dir(self.root / name, {**files, _META: body})

    def _trim(self, keep: str | None) -> list[str]:
        ids = self.ids()
        sizes = {i: _size(self.root / i) for i in ids}
        base = self.root / BASELINE
        total = sum(sizes.values()) + (_size(base) if base.is_dir() else 0)
        dropped: list[str] = []
        for bundle in ids:
            if bundle == keep:
                continue
            if len(ids) - len(dropped) <= self.max_bundles and total <= self.max_bytes:
                break
            shutil.rmtree(self.root / bundle, ignore_errors=True)
            total -= sizes[bundle]
            dropped.append(bundle)
        return dropped

    def clean(self) -> None:
        """Remove what a crash mid-write left behind (``.tmp-*``, ``.old-*``)."""
        if not self.root.is_dir():
            return
        for path in self.root.iterdir():
            if path.is_dir() and path.name.startswith((".tmp-", ".old-")):
                shutil.rmtree(path, ignore_errors=True)

    def total_bytes(self) -> int:
        """Bytes held by the bundles and the baseline."""
        if not self.root.is_dir():
            return 0
        return sum(
            _size(p) for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
