"""A demo target: a stand-in for a leaking Go order service, for demos and tests.

It serves ``GET /debug/vars`` in Go's expvar shape and format (``cmdline``, the full
``memstats``, and the app's own vars) from ``sidecar.demo.sim``, and the endpoints the
sidecar calls: ``POST /v1/circuit/break``, ``POST /v1/circuit/reset``, ``GET /v1/circuit``
and ``POST /v1/cache/flush``. Each call to ``/v1/*`` is recorded (``GET /demo/calls``,
``DemoApp.calls``); an ``Idempotency-Key`` seen before on the same path replays the first
answer without acting again.

Demo controls, never needed by the sidecar: ``GET|POST /demo/leak`` switches the leak,
``GET|POST|DELETE /demo/faults`` injects failures into any non-``/demo`` path (a status,
a delay, a connection dropped mid-response; a refused connection is the app stopped),
``DELETE /demo/calls`` forgets the record. The app binds only the address it is given.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import msgspec
import orjson
import structlog
from aiohttp import web

from sidecar.core import validation
from sidecar.core.errors import clip
from sidecar.demo.faults import Fault, FaultQueue, drop
from sidecar.demo.sim import LeakSettings, Simulation

__all__ = [
    "DEMO_APP",
    "Call",
    "DemoApp",
    "Fault",
    "LeakSettings",
    "render_expvar",
    "scaled_clock",
    "serve",
]

_log = structlog.get_logger(__name__)

_MAX_BODY = 64 * 1024
_MAX_CALLS = 1000  # the record is for inspection, not an unbounded log
_MAX_IDEMPOTENCY_KEYS = 1000
_MAX_FAULTS = 100
# expvar.Map values print as Go's Map.String(); every other var is json.Marshal'd.
_EXPVAR_MAPS = frozenset({"caches", "http_requests"})
_REDACTED = frozenset({"authorization", "cookie", "proxy-authorization"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_T = TypeVar("_T")


@dataclass(frozen=True)
class Call:
    """One request to ``/v1/*`` as the app received it."""

    method: str
    path: str
    headers: dict[str, str]  # Authorization and cookies redacted
    idempotency_key: str | None
    authorization: bool  # an Authorization header was present
    authorized: bool  # it matched the token, or no token is required
    body: Any  # decoded JSON, or None when empty or not JSON
    time: float  # wall-clock seconds
    status: int
    fault: str | None
    replayed: bool


def render_expvar(doc: dict[str, Any], maps: frozenset[str] = _EXPVAR_MAPS) -> bytes:
    """Print ``doc`` byte for byte as Go's expvar handler prints its vars.

    ``maps`` names the ``expvar.Map`` vars, which Go prints in their own style; every
    other var is ``json.Marshal``-ed.
    """

    def go_map(value: Any) -> str:
        if isinstance(value, dict):
            items = sorted(value.items())
            return (
                "{" + ", ".join(f"{orjson.dumps(k).decode()}: {go_map(v)}" for k, v in items) + "}"
            )
        return orjson.dumps(value).decode()

    lines = [
        f"{orjson.dumps(k).decode()}: " + (go_map(v) if k in maps else orjson.dumps(v).decode())
        for k, v in sorted(doc.items())
    ]
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode()


class DemoApp:
    """The demo service's state, its recorded calls and faults; ``app()`` serves them."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        leak: LeakSettings | None = None,
        token: str | None = None,
        cmdline: list[str] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.sim = Simulation(clock=clock, wall=wall, leak=leak)
        self._wall = wall
        self._bearer = None if token is None else f"Bearer {token}".encode()
        self._cmdline = cmdline if cmdline is not None else ["order-service"]
        self._calls: deque[Call] = deque(maxlen=_MAX_CALLS)
        self.faults = FaultQueue(sleep)
        self._replies: OrderedDict[tuple[str, str], tuple[int, dict[str, Any]]] = OrderedDict()
        self._actions: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
            ("GET", "/v1/circuit"): self.sim.circuit,
            ("POST", "/v1/circuit/break"): self._break,
            ("POST", "/v1/circuit/reset"): self._reset,
            ("POST", "/v1/cache/flush"): self._flush,
        }

    @property
    def calls(self) -> list[Call]:
        """Every recorded call to ``/v1/*``, oldest first (the last 1000)."""
        return list(self._calls)

    def vars(self) -> dict[str, Any]:
        """The /debug/vars document now."""
        return self.sim.expvar(self._cmdline)

    def app(self) -> web.Application:
        """A fresh ``aiohttp`` application serving this state."""
        app = web.Application(client_max_size=_MAX_BODY, middlewares=[self._middleware])
        app[DEMO_APP] = self
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        r = app.router
        r.add_get("/debug/vars", self._vars)
        r.add_get("/healthz", self._healthz)
        for method, path in self._actions:
            r.add_route(method, path, self._v1)
        r.add_get("/demo/calls", self._get_calls)
        r.add_delete("/demo/calls", self._delete_calls)
        r.add_get("/demo/faults", self._get_faults)
        r.add_post("/demo/faults", self._post_fault)
        r.add_delete("/demo/faults", self._delete_faults)
        r.add_get("/demo/leak", self._get_leak)
        r.add_post("/demo/leak", self._post_leak)
        return app

    async def _on_startup(self, _: web.Application) -> None:
        # A fresh event per run: the state outlives a stop, so a test can restart the app.
        self.faults.closing = asyncio.Event()

    async def _on_shutdown(self, _: web.Application) -> None:
        self.faults.closing.set()

    # -- the service's endpoints ------------------------------------------------------

    def _break(self) -> dict[str, Any]:
        changed = self.sim.break_circuit()
        _log.info("demo_app.circuit_opened", changed=changed)
        return {**self.sim.circuit(), "changed": changed}

    def _reset(self) -> dict[str, Any]:
        changed = self.sim.reset_circuit()
        _log.info("demo_app.circuit_closed", changed=changed)
        return {**self.sim.circuit(), "changed": changed}

    def _flush(self) -> dict[str, Any]:
        dropped = self.sim.flush()
        _log.info("demo_app.cache_flushed", keys=sum(dropped.values()))
        return {"flushed": dropped, "flushed_keys": sum(dropped.values())}

    async def _vars(self, _: web.Request) -> web.Response:
        return web.Response(
            body=render_expvar(self.vars()),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    # -- faults, recording, auth, idempotency -------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Faults for the paths that do not record calls (``/debug/vars``, ``/healthz``)."""
        if request.path.startswith(("/demo/", "/v1/")):
            return await handler(request)
        fault = await self.faults.arrive(request.method, request.path)
        if fault is not None and fault.status is not None:
            return _json({"error": "injected fault"}, status=fault.status)
        response = await handler(request)
        if fault is not None and fault.drop and isinstance(response, web.Response):
            body = response.body if isinstance(response.body, bytes) else b""
            return await drop(request, response.status, body, response.content_type)
        return response

    async def _v1(self, request: web.Request) -> web.StreamResponse:
        fault = await self.faults.arrive(request.method, request.path)
        raw = await request.read()
        body: Any = None
        bad_json = None
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                bad_json = clip(exc, 200)
        header = request.headers.get("Authorization")
        # Like the sidecar, only state-changing calls need the token.
        authorized = (
            self._bearer is None
            or request.method == "GET"
            or (header is not None and hmac.compare_digest(header.encode(), self._bearer))
        )
        key = request.headers.get("Idempotency-Key")
        replayed = False
        if fault is not None and fault.status is not None:
            status, reply = fault.status, {"error": "injected fault"}
        elif not authorized:
            status, reply = 401, {"error": "missing or wrong bearer token"}
        elif bad_json is not None:
            status, reply = 400, {"error": f"body is not JSON: {bad_json}"}
        elif key is not None and (key, request.path) in self._replies:
            (status, reply), replayed = self._replies[(key, request.path)], True
        else:
            status, reply = 200, self._actions[(request.method, request.path)]()
            if key is not None and request.method == "POST":
                self._replies[(key, request.path)] = (status, reply)
                if len(self._replies) > _MAX_IDEMPOTENCY_KEYS:
                    self._replies.popitem(last=False)
        self._calls.append(
            Call(
                method=request.method,
                path=request.path,
                headers={
                    str(k): ("<redacted>" if k.lower() in _REDACTED else v)
                    for k, v in request.headers.items()
                },
                idempotency_key=key,
                authorization=header is not None,
                authorized=authorized,
                body=body,
                time=self._wall(),
                status=status,
                fault=fault.describe() if fault is not None else None,
                replayed=replayed,
            )
        )
        _log.info("demo_app.call", method=request.method, path=request.path, status=status)
        if fault is not None and fault.drop:
            return await drop(request, status, orjson.dumps(reply), "application/json")
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return _json(reply, status=status, headers=headers)

    # -- demo controls ----------------------------------------------------------------

    async def _get_calls(self, _: web.Request) -> web.Response:
        return _json({"calls": [asdict(c) for c in self._calls]})

    async def _delete_calls(self, _: web.Request) -> web.Response:
        self._calls.clear()
        return _json({"calls": []})

    async def _get_faults(self, _: web.Request) -> web.Response:
        return _json({"faults": validation.builtins(self.faults.pending())})

    async def _post_fault(self, request: web.Request) -> web.Response:
        fault, error = await _parse(request, Fault.validate)
        if fault is None:
            return _json({"error": error}, status=422)
        if len(self.faults.pending()) >= _MAX_FAULTS:
            return _json({"error": f"at most {_MAX_FAULTS} pending faults"}, status=422)
        self.faults.add(fault)
        return _json({"faults": validation.builtins(self.faults.pending())}, status=201)

    async def _delete_faults(self, _: web.Request) -> web.Response:
        self.faults.clear()
        return _json({"faults": []})

    async def _get_leak(self, _: web.Request) -> web.Response:
        return _json(validation.builtins(self.sim.leak))

    async def _post_leak(self, request: web.Request) -> web.Response:
        current = validation.builtins(self.sim.leak)

        def merge(body: Any) -> LeakSettings:
            if not isinstance(body, dict):
                raise TypeError(f"expected a JSON object, got {type(body).__name__}")
            return LeakSettings.validate({**current, **body})

        leak, error = await _parse(request, merge)
        if leak is None:
            return _json({"error": error}, status=422)
        self.sim.set_leak(leak)
        settings = validation.builtins(leak)
        _log.info("demo_app.leak_set", **settings)
        return _json(settings)


DEMO_APP = web.AppKey("demo_app", DemoApp)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type="application/json"
    )


async def _parse(request: web.Request, build: Callable[[Any], _T]) -> tuple[_T | None, str]:
    """The body built by ``build``, or the reason it cannot be, for a 422."""
    try:
        raw = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        return None, f"body is not JSON: {clip(exc, 200)}"
    try:
        return build(raw), ""
    except msgspec.ValidationError as exc:
        # The demo's bodies hold no secrets: the offending value is echoed.
        return None, clip(validation.Problem.of(exc, raw).line(), 500)
    except TypeError as exc:
        return None, clip(exc, 500)


async def serve(
    host: str = "127.0.0.1", port: int = 8080, demo: DemoApp | None = None
) -> web.AppRunner:
    """Start the demo app on ``host:port``; the caller cleans the returned runner up.

    The ``DemoApp`` is ``runner.app[DEMO_APP]``; the bound port ``runner.addresses[0][1]``.
    """
    demo = demo if demo is not None else DemoApp()
    runner = web.AppRunner(demo.app(), handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await asyncio.shield(runner.cleanup())
        raise
    return runner


def scaled_clock(speed: float, base: Callable[[], float] = time.monotonic) -> Callable[[], float]:
    """A monotonic clock that runs ``speed`` times faster than ``base`` from now on."""
    start = base()
    return lambda: start + (base() - start) * speed
