"""The sidecar's HTTP server: routes, auth and size limits, health and readiness.

Every stage contributes its routes as a list of ``web.RouteDef``; this module adds the
cross-cutting parts: bearer-token auth on every state-changing method, the body-size cap,
``/metrics``, ``/healthz`` (the sidecar's own loops) and ``/readyz`` (config and rules
loaded, server listening). Neither probe ever looks at the app: a sidecar that turns
unready when the app struggles would amplify the failure it is there to stop.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

__all__ = ["Probe", "Server", "build_app", "json_error", "refuse_non_json"]

Probe = Callable[[], tuple[bool, str]]
"""Returns (ok, detail) for /healthz or /readyz."""

_TOKEN = web.AppKey("token", str)
_REGISTRY = web.AppKey("registry", CollectorRegistry)
_HEALTH: web.AppKey[Probe] = web.AppKey("health")
_READY: web.AppKey[Probe] = web.AppKey("ready")

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_JSON = "application/json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, message: str, **extra: object) -> web.Response:
    """A JSON error body ``{"status": "error", "error": message, ...}`` with ``status``."""
    return web.json_response({"status": "error", "error": message, **extra}, status=status)


def refuse_non_json(request: web.Request) -> web.Response | None:
    """The 415 answer to a request whose content type is not JSON, or None."""
    if request.content_type == _JSON:
        return None
    return json_error(415, f"unsupported content type {request.content_type!r}, expected {_JSON!r}")


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.app[_TOKEN]
    if token and request.method not in _SAFE_METHODS:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            return json_error(401, "missing bearer token: send 'Authorization: Bearer <token>'")
        # Constant time, on bytes so that non-ASCII input cannot raise.
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            return json_error(401, "invalid bearer token")
    return await handler(request)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge as exc:
        return json_error(413, f"request body too large: {exc.text}")
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return json_error(exc.status, exc.reason)
        raise


# Every name we export is in the classic alphabet, so the classic text format is what we
# speak: every Prometheus version since 2.0 reads it.
_EXPOSITION = "text/plain; version=0.0.4; charset=utf-8"


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[_REGISTRY])
    return web.Response(body=body, headers={"Content-Type": _EXPOSITION})


def _probe(ok: bool, detail: str) -> web.Response:
    return web.json_response(
        {"status": "ok" if ok else "unavailable", "detail": detail}, status=200 if ok else 503
    )


async def _healthz(request: web.Request) -> web.Response:
    return _probe(*request.app[_HEALTH]())


async def _readyz(request: web.Request) -> web.Response:
    return _probe(*request.app[_READY]())


def build_app(
    *,
    registry: CollectorRegistry,
    token: str | None,
    max_body_bytes: int,
    health: Probe,
    ready: Probe,
    routes: Iterable[web.RouteDef] = (),
) -> web.Application:
    """Assemble the aiohttp application; ``token`` None means no auth (loopback only)."""
    app = web.Application(client_max_size=max_body_bytes, middlewares=[_errors, _auth])
    app[_TOKEN] = token or ""
    app[_REGISTRY] = registry
    app[_HEALTH] = health
    app[_READY] = ready
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_routes(list(routes))
    return app


class Server:
    """The application on its TCP socket: ``start`` binds and serves, ``stop`` stops
    accepting and finishes in-flight requests within ``shutdown_grace``."""

    def __init__(self, app: web.Application, *, shutdown_grace: float) -> None:
        self.app = app
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=shutdown_grace)
        self.port: int | None = None
        """The bound port, once started (the configured one, or the OS's pick for 0)."""

    async def start(self, listen: str) -> int:
        """Bind ``host:port`` (``[v6]:port`` too) and serve; return the bound port."""
        await self._runner.setup()
        host, _, port = listen.rpartition(":")
        await web.TCPSite(self._runner, host.strip("[]"), int(port)).start()
        for addr in self._runner.addresses:
            if isinstance(addr, tuple):
                self.port = int(addr[1])
                return self.port
        raise RuntimeError("the server is not listening on a TCP address")

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, release the socket."""
        await self._runner.cleanup()
