"""The sidecar's HTTP server: routes, auth and size limits, health and readiness.

Every stage contributes its routes as a list of ``web.RouteDef``; this module adds the
cross-cutting parts: bearer-token auth on every state-changing method, the body-size cap,
``/metrics``, ``/healthz`` (the sidecar's own loops) and ``/readyz`` (config and rules
loaded, server listening). Neither probe ever looks at the app: a sidecar that turns
unready when the app struggles would amplify the failure it is there to stop.

Every connection is bounded (``Limits``): a client that has not sent a request's
headers within ``header_timeout`` (on connect, or after its last answer) is cut off,
a body must arrive within ``body_timeout``, a ``Content-Length`` past the body cap is
refused before a byte is read, and past ``max_connections`` the oldest connection that
has no request in progress is closed for the new one, so that slow or idle clients
can never starve the probes. A handler bound to an ``Observed`` sees every answer to
its route, the middleware's 401, 413 and 500 included. ``Server.start`` listens over TLS
when given a context: the admission webhook (``injector``) is served by the same machinery.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import resource
import ssl
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CollectorRegistry, Counter, generate_latest

from sidecar.core.durations import format_duration
from sidecar.core.errors import ConfigError, clip
from sidecar.web.bodies import json_error

__all__ = ["Limits", "Observed", "Probe", "Server", "TokenSource", "build_app"]

log = structlog.get_logger(__name__)

Probe = Callable[[], tuple[bool, str]]
"""Returns (ok, detail) for /healthz or /readyz."""
TokenSource = Callable[[], str | None]
"""The bearer token now (a token file is re-read when it changes); None or "": no auth."""

_TOKEN: web.AppKey[TokenSource] = web.AppKey("token")
_REGISTRY = web.AppKey("registry", CollectorRegistry)
_HEALTH: web.AppKey[Probe] = web.AppKey("health")
_READY: web.AppKey[Probe] = web.AppKey("ready")
_UNAUTHORIZED = web.AppKey("unauthorized", Counter)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client may cost the server (``server.*`` in config)."""

    max_body_bytes: int = 1024 * 1024
    header_timeout: float = 30.0
    body_timeout: float = 10.0
    max_connections: int = 256


_LIMITS = web.AppKey("limits", Limits)
_BUSY: web.AppKey[set[object]] = web.AppKey("busy")
"""The connections (protocols) with a request in progress: never closed for a new one."""


@runtime_checkable
class Observed(Protocol):
    """The owner of a handler (a bound method) told the status of every answer to its route."""

    def answered(self, status: int) -> None:
        """Called once per request with the status that went out."""


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.app[_TOKEN]() if request.method not in _SAFE_METHODS else None
    if token:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            return json_error(401, "missing bearer token: send 'Authorization: Bearer <token>'")
        # Constant time, on bytes so that no input can raise: a header that is not
        # UTF-8 reaches us with surrogate escapes, which encode back to its bytes.
        if not hmac.compare_digest(
            given.strip().encode("utf-8", "surrogateescape"), token.encode()
        ):
            return json_error(401, "invalid bearer token")
    return await handler(request)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: every error is a JSON answer, and an ``Observed`` handler sees it."""
    try:
        response = await _answer(request, handler)
    except web.HTTPException as exc:
        _observe(request, exc.status)
        raise
    _observe(request, response.status)
    counter = request.app.get(_UNAUTHORIZED)
    if response.status == 401 and counter is not None:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        counter.labels(route).inc()
    return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge as exc:
        return json_error(413, f"request body too large: {exc.text}")
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            response = json_error(exc.status, exc.reason)
            # A 405's Allow (RFC 9110 requires it) and the like survive the JSON body.
            for name in ("Allow", "WWW-Authenticate", "Retry-After"):
                if name in exc.headers:
                    response.headers[name] = exc.headers[name]
            return response
        raise
    except Exception as exc:  # a bug must be a 500 that is counted and logged, once
        log.error("server.handler_crashed", path=clip(request.path, 200), exc_info=exc)
        return json_error(500, "internal error; see the sidecar's log")


def _closing(response: web.Response) -> web.Response:
    # The body was not read (whole): the connection cannot carry another request.
    response.force_close()
    return response


def _oneline(exc: BaseException) -> str:
    return clip(" ".join(str(getattr(exc, "message", "") or exc).split()), 200)


def _observe(request: web.Request, status: int) -> None:
    # The route's handler is a bound method of its observer.
    # (Looked up by name: an isinstance check on the protocol costs more than the answer.)
    answered = getattr(getattr(request.match_info.handler, "__self__", None), "answered", None)
    if callable(answered):
        answered(status)


@web.middleware
async def _body(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read a request's body here, bounded in size and time, before any handler sees it.

    ``Content-Length`` is checked before a byte is read; the body then has
    ``body_timeout`` to arrive whole (``request.read()`` keeps it for the handler).
    """
    limits = request.app[_LIMITS]
    busy = request.app[_BUSY]
    busy.add(request.protocol)
    try:
        if request.body_exists:
            length = request.content_length
            if length is not None and length > limits.max_body_bytes:
                too_large = web.HTTPRequestEntityTooLarge(limits.max_body_bytes, length)
                return _closing(json_error(413, f"request body too large: {too_large.text}"))
            try:
                async with asyncio.timeout(limits.body_timeout):
                    await request.read()
            except TimeoutError:
                # The rest of the body may never come: do not wait for it after answering.
                return _closing(
                    json_error(
                        408,
                        f"request body not received within {format_duration(limits.body_timeout)}",
                    )
                )
            except (web.RequestPayloadError, HttpProcessingError) as exc:
                # A Content-Encoding that does not decode (bad deflate or gzip), a broken
                # chunked framing: the client's fault, not ours.
                cause = exc.__cause__ if exc.__cause__ is not None else exc
                return _closing(json_error(400, f"cannot read the request body: {_oneline(cause)}"))
        return await handler(request)
    finally:
        busy.discard(request.protocol)


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


_COUNTERS: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()
"""The 401 counter of each registry: one per registry, however many apps share it."""


def _unauthorized(registry: CollectorRegistry) -> Counter:
    counter = _COUNTERS.get(registry)
    if counter is None:
        counter = _COUNTERS[registry] = Counter(
            "leak_sidecar_http_unauthorized_total",
            "Requests refused with 401 (no or a wrong bearer token), by route; an unknown "
            "path is 'unmatched'.",
            ["route"],
            registry=registry,
        )
    return counter


def build_app(
    *,
    registry: CollectorRegistry,
    token: str | TokenSource | None,
    max_body_bytes: int,
    health: Probe,
    ready: Probe,
    routes: Iterable[web.RouteDef] = (),
    limits: Limits | None = None,
) -> web.Application:
    """Assemble the aiohttp application; ``token`` None means no auth (loopback only);
    a ``TokenSource`` is asked on every request, so that a rotated token file applies.

    ``limits`` bound each client (defaults when None); ``max_body_bytes`` is its body cap.
    """
    limits = replace(limits or Limits(), max_body_bytes=max_body_bytes)
    app = web.Application(
        client_max_size=limits.max_body_bytes, middlewares=[_errors, _auth, _body]
    )
    app[_LIMITS] = limits
    app[_BUSY] = set()
    app[_TOKEN] = token if callable(token) else lambda: token
    app[_REGISTRY] = registry
    app[_HEALTH] = health
    app[_READY] = ready
    if token is not None:  # without a token nothing is refused: no counter to show
        app[_UNAUTHORIZED] = _unauthorized(registry)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    # Prometheus's and Alertmanager's own probe paths, for operators who know those.
    app.router.add_get("/-/healthy", _healthz)
    app.router.add_get("/-/ready", _readyz)
    app.router.add_routes(list(routes))
    return app


class Server:
    """The application on its TCP socket: ``start`` binds and serves, ``stop`` stops
    accepting and finishes in-flight requests within ``shutdown_grace``."""

    def __init__(self, app: web.Application, *, shutdown_grace: float) -> None:
        self.app = app
        limits = app[_LIMITS]
        self._runner = web.AppRunner(
            app,
            handle_signals=False,
            shutdown_timeout=shutdown_grace,
            # aiohttp arms this when a connection opens and after each answer: a client
            # that has not sent a whole request's headers by then is closed.
            keepalive_timeout=limits.header_timeout,
            # After an early answer (413, 401), discard what is still coming for at most
            # this long, so that the client reads the answer, then close.
            lingering_time=1.0,
        )
        self._refused = 0
        self.max_connections = _connection_cap(limits.max_connections)
        """``max_connections``, lowered to fit the process's file descriptor limit."""
        self.port: int | None = None
        """The bound port, once started (the configured one, or the OS's pick for 0)."""

    async def start(
        self, listen: str, *, ssl_context: ssl.SSLContext | None = None, key: str = "server.listen"
    ) -> int:
        """Bind ``host:port`` (``[v6]:port`` too) and serve, over TLS with ``ssl_context``;
        return the bound port. ``key`` names the setting in a ``ConfigError``."""
        await self._runner.setup()
        host, _, port = listen.rpartition(":")
        try:
            await _CappedSite(self, host.strip("[]"), int(port), ssl_context).start()
        except OSError as exc:
            # A busy port or a foreign address: the operator's to fix, not a crash.
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            problem = f"{key}: cannot listen on {listen}: {why}"
            raise ConfigError([problem]) from exc
        for addr in self._runner.addresses:
            if isinstance(addr, tuple):
                self.port = int(addr[1])
                return self.port
        raise RuntimeError("the server is not listening on a TCP address")

    def _accept(self) -> asyncio.BaseProtocol:
        """A protocol for a new connection, making room for it within the cap."""
        server = self._runner.server
        assert server is not None
        connections = server.connections
        if len(connections) >= self.max_connections:
            busy = self.app[_BUSY]
            # Oldest first: the longest idle, or the slowest to send its headers.
            idle = [c for c in connections if c not in busy]
            excess = len(connections) - self.max_connections + 1
            for handler in idle[:excess]:
                handler.force_close()
            if len(idle) < excess:
                self._refused += 1
                # Logged once per thousand: a flood of connections must not flood the log.
                if self._refused % 1000 == 1:
                    log.warning(
                        "server.connection_refused",
                        connections=len(connections),
                        refused_so_far=self._refused,
                    )
                return _Refuse()
        return server()

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, release the socket."""
        await self._runner.cleanup()


def _connection_cap(wanted: int) -> int:
    # Keep half of the descriptors for the journal, the app's connections and the rest:
    # a full table would refuse the probes' connections, which is what the cap prevents.
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(8, min(wanted, soft // 2))


class _Refuse(asyncio.Protocol):
    """A connection past the cap while every other one is busy: closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _CappedSite(web.TCPSite):
    """A TCP site whose connections go through ``Server._accept``."""

    def __init__(
        self, server: Server, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> None:
        super().__init__(server._runner, host, port, ssl_context=ssl_context)
        self._owner = server

    async def start(self) -> None:
        # TCPSite.start with our protocol factory instead of the runner's server.
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._owner._accept,
            self._host,
            self._port,
            backlog=self._backlog,
            ssl=self._ssl_context,
        )
