"""POST /-/reload: re-read the config and rules, as Prometheus's ``/-/reload`` does.

Like every POST it needs the bearer token. 200 once the new config and rules run (every
key a reload can apply, applied at once; see ``supervisor.reload``); 500 with the reason
when the config or a rule file is invalid, and the old ones keep running.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from sidecar.web.bodies import json_error

__all__ = ["Reload", "routes"]

Reload = Callable[[], str | None]
"""Reloads; returns None on success, else why nothing changed."""


def routes(reload: Reload) -> list[web.RouteDef]:
    """The reload route."""

    async def handle(request: web.Request) -> web.Response:
        problem = reload()
        if problem is not None:
            return json_error(500, f"failed to reload config: {problem}")
        return web.json_response({"status": "success"})

    return [web.post("/-/reload", handle)]
