"""Fixtures shared by every test: globals reset, free ports, a fresh registry, servers."""

from __future__ import annotations

import asyncio
import io
import json
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Protocol, TypeVar, get_args, get_origin

import pytest
import structlog
from actions_support import Disk
from aiohttp import web
from msgspec import Struct
from msgspec.structs import fields
from prometheus_client import CollectorRegistry

from sidecar.actions import journal as journal_module
from sidecar.core.logs import configure
from sidecar.rules.promql import native


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """Every test starts and ends with structlog's defaults."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture
def registry() -> CollectorRegistry:
    """A private metrics registry, so no test sees another's samples."""
    return CollectorRegistry()


@pytest.fixture
def log_stream() -> io.StringIO:
    """Capture structlog's JSON output in memory."""
    stream = io.StringIO()
    configure("json", "debug", stream)
    # A cached logger would keep writing to this test's stream in later tests.
    structlog.configure(cache_logger_on_first_use=False)
    return stream


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def config_keys(model: type[Struct], prefix: str = "") -> list[str]:
    """Every leaf key path of a config model, in declaration order."""
    out = []
    for field in fields(model):
        ann = get_args(field.type)[0] if get_origin(field.type) is Annotated else field.type
        if isinstance(ann, type) and issubclass(ann, Struct):
            out.extend(config_keys(ann, f"{prefix}{field.encode_name}."))
        else:
            out.append(f"{prefix}{field.encode_name}")
    return out


class _Server(Protocol):
    """What ``running`` drives: the sidecar, and the injector, which runs the same way."""

    started: asyncio.Event

    async def run(self, stop: asyncio.Event) -> None: ...


_S = TypeVar("_S", bound=_Server)


@asynccontextmanager
async def running(sidecar: _S) -> AsyncIterator[_S]:
    """Run a whole sidecar (or the injector) in process until the block ends; it is
    listening inside."""
    stop = asyncio.Event()
    task = asyncio.create_task(sidecar.run(stop))
    try:
        async with asyncio.timeout(10):
            await sidecar.started.wait()
        yield sidecar
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await task


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1, on a port the kernel picks, until the block ends;
    yields its base URL."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def expvar_app(doc: dict[str, object]) -> web.Application:
    """An app whose ``/debug/vars`` always answers ``doc`` as JSON, the way Go's expvar does."""
    body = json.dumps(doc)

    async def vars_(_: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/debug/vars", vars_)
    return app


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[Disk]:
    """The journal's ``append_durably``, able to hold one commit and fail another."""
    d = Disk()
    monkeypatch.setattr(journal_module, "append_durably", d)
    yield d
    d.release.set()


@pytest.fixture(params=["c", "python"])
def range_kernels(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test runs twice: on the C range kernels, and on the Python ones alone (an
    install without a C compiler, and every window that is not the store's arrays)."""
    if request.param == "python":
        monkeypatch.setattr(native, "kernels", None)
    return str(request.param)
