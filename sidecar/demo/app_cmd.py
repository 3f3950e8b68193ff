"""``leak-sidecar demo-app``: the demo app as a process of its own.

Owns what ``sidecar.demo.app`` leaves to its caller: checking ``--listen`` and
``--speed`` (``demo-app: --OPTION: ...`` on stderr, exit 2), configuring the logs, serving
until SIGINT or SIGTERM (exit 0), and a port that cannot be bound (``demo_app.bind_failed``,
exit 1). The app itself, its routes and its state are ``sidecar.demo.app``'s.
"""

from __future__ import annotations

import asyncio
import sys

import structlog

from sidecar.core.logs import configure
from sidecar.core.loops import stop_on_signals
from sidecar.demo.app import DemoApp, LeakSettings, scaled_clock, serve

__all__ = ["run_demo_app"]

_log = structlog.get_logger(__name__)


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port such as 127.0.0.1:8080, got {listen!r}")
    return host, int(port)


def run_demo_app(listen: str = "127.0.0.1:8080", leak: bool = False, *, speed: float = 1.0) -> int:
    """``leak-sidecar demo-app``: serve until SIGINT or SIGTERM; returns the exit code.

    ``speed`` runs the simulated service that many times faster than real time, for a
    demo whose rule pack is compressed by the same factor.
    """
    try:
        host, port = _split_listen(listen)
    except ValueError as exc:
        print(f"demo-app: --listen: {exc}", file=sys.stderr)
        return 2
    if not 0 < speed <= 10_000:  # also refuses NaN
        print(
            f"demo-app: --speed: expected a factor above 0 and up to 10000, got {speed!r}",
            file=sys.stderr,
        )
        return 2
    configure()

    async def main() -> int:
        stop = stop_on_signals()
        demo = DemoApp(
            clock=scaled_clock(speed), leak=LeakSettings(on=leak), cmdline=list(sys.argv)
        )
        try:
            runner = await serve(host, port, demo)
        except OSError as exc:
            _log.error("demo_app.bind_failed", listen=listen, error=str(exc))
            return 1
        _log.info("demo_app.listening", listen=listen, leak=leak, speed=speed)
        try:
            await stop.wait()
        finally:
            await asyncio.shield(runner.cleanup())
        _log.info("demo_app.stopped")
        return 0

    return asyncio.run(main())
