"""The real Go test service (tests/fixtures/goservice) as a process the tests drive.

``build_goservice`` compiles it once per session (offline, private caches, standard
library only); ``goservice`` starts it on 127.0.0.1 (a free port, or the one given, so
that a restarted process answers at the same address) and stops it when the context
exits. ``GoService`` reads its call log and state and injects faults over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from leakapp_support import go_build

__all__ = ["GoService", "build_goservice", "goservice"]

SOURCE = Path(__file__).parent.parent / "fixtures" / "goservice"


def build_goservice(workdir: Path) -> Path:
    """``go build`` the service into ``workdir``; fails the test, naming the package, without Go."""
    return go_build(SOURCE, workdir, "goservice")


@dataclass
class GoService:
    """A running service: its URL, process, and an HTTP session to drive it."""

    url: str
    port: int
    proc: asyncio.subprocess.Process
    http: aiohttp.ClientSession

    async def _get(self, path: str) -> Any:
        async with self.http.get(self.url + path) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def calls(self, path: str | None = None) -> list[dict[str, Any]]:
        """Every call to /v1/* it received, in order (on ``path`` when given)."""
        calls: list[dict[str, Any]] = await self._get("/test/calls")
        return [c for c in calls if path is None or c["path"] == path]

    async def circuit(self) -> dict[str, Any]:
        """Its own view: ``{"state": ..., "generation": ...}``."""
        out: dict[str, Any] = await self._get("/v1/circuit")
        return out

    async def fault(self, path: str, mode: str, seconds: float) -> None:
        """Fail calls to ``path`` for ``seconds``: ``drop`` the connection or answer ``503``."""
        body = {"path": path, "mode": mode, "seconds": seconds}
        async with self.http.post(self.url + "/test/fault", json=body) as resp:
            assert resp.status == 200, await resp.text()

    async def leak(self) -> float:
        """Start its leak (cache_keys_total grows 10000 a second); when it started (Unix s)."""
        async with self.http.post(self.url + "/test/leak") as resp:
            assert resp.status == 200, await resp.text()
            at: float = (await resp.json())["at"]
            return at

    async def kill(self) -> None:
        """SIGKILL the process and reap it."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()


@asynccontextmanager
async def goservice(binary: Path, *, port: int = 0, jitter: str = "0s") -> AsyncIterator[GoService]:
    """The service on 127.0.0.1:``port`` (0: a free one), ready; killed on exit."""
    proc = await asyncio.create_subprocess_exec(
        str(binary), f"-listen=127.0.0.1:{port}", f"-jitter={jitter}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(10):
            line = await proc.stdout.readline()
        assert line, "the Go service exited before it listened"
        listen = json.loads(line)["listen"]
        bound = int(listen.rpartition(":")[2])
        async with aiohttp.ClientSession() as http:
            yield GoService(f"http://127.0.0.1:{bound}", bound, proc, http)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()
