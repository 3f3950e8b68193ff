"""A minimal sidecar process for the restart tests: the action path behind the HTTP server.

Usage: ``python actions_runner.py CONFIG.yaml`` (token from ``LEAK_SIDECAR_TOKEN``).
Prints ``READY <port>`` once listening; SIGTERM stops it cleanly. The condition view says
"cleared" for every alert: these tests are about the journal, not about data.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from sidecar.action_path import build_action_path
from sidecar.config import load
from sidecar.logs import configure
from sidecar.model import Alert
from sidecar.server import build_app


class _Cleared:
    def cleared(self, alert: Alert) -> bool:
        return True


async def _main(config_path: Path) -> None:
    cfg = load(config_path, os.environ)
    configure("json", "debug", sys.stderr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    registry = CollectorRegistry()
    async with aiohttp.ClientSession() as session:
        path = build_action_path(cfg, session=session, registry=registry, view=_Cleared())
        await path.start()
        app = build_app(
            registry=registry,
            token=cfg.token.get_secret_value() if cfg.token else None,
            max_body_bytes=int(cfg.server.max_body_bytes),
            health=lambda: (True, "running"),
            ready=lambda: (True, "ready"),
            routes=path.routes(),
        )
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        host, _, port = cfg.server.listen.rpartition(":")
        await web.TCPSite(runner, host, int(port)).start()
        print(f"READY {runner.addresses[0][1]}", flush=True)
        try:
            await path.run(stop)
        finally:
            await runner.cleanup()
            await path.close()


if __name__ == "__main__":
    asyncio.run(_main(Path(sys.argv[1])))
