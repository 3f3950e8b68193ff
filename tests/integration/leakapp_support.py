"""The Go leak app of tests/fixtures/leakapp (expvar on one loopback port, net/http/pprof
on another), built once per session with the local toolchain, offline; and ``go_build``,
which every Go fixture under tests/fixtures is built with."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

LEAKAPP = Path(__file__).parent.parent / "fixtures" / "leakapp"


def go() -> str:
    path = shutil.which("go")
    if path is None:
        raise AssertionError("go is not installed (Debian: golang-go); it builds the Go fixtures")
    return path


def go_env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "GOCACHE": str(tmp / "cache"),
        "GOPATH": str(tmp / "gopath"),
        "GOTOOLCHAIN": "local",
        "GOPROXY": "off",
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }


def go_build(source: Path, workdir: Path, name: str) -> Path:
    """``go build`` the program in ``source`` to ``workdir/name``: the local toolchain,
    offline, with a private cache under ``workdir``."""
    out = workdir / name
    subprocess.run(
        [go(), "build", "-o", str(out), "."],
        cwd=source,
        env=go_env(workdir),
        check=True,
        timeout=300,
    )
    return out


def build_leakapp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The leak app, built once (a session fixture calls it)."""
    return go_build(LEAKAPP, tmp_path_factory.mktemp("leakapp"), "leakapp")


@asynccontextmanager
async def leakapp(binary: Path, *args: str) -> AsyncIterator[dict[str, str]]:
    """Run the leak app on loopback port 0; yields its ``app`` and ``pprof`` addresses."""
    proc = await asyncio.create_subprocess_exec(
        str(binary), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            line = (await proc.stdout.readline()).decode().split()
        yield {k: f"http://{v}" for k, _, v in (w.partition("=") for w in line)}
    finally:
        proc.terminate()
        async with asyncio.timeout(10):
            await proc.wait()
