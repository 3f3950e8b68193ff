"""The operator's API: see the circuit, break, reset and flush by hand.

``GET /v1/circuit`` shows the state, since when, why, who asked, the alerts holding it
open and the earliest automatic reset; the ``desired`` state and its ``generation``, what
the app last confirmed (``observed``), whether they agree (``in_sync``) and the last
reconcile (see ``actions.reconcile``). The POSTs (authenticated by the server like
every POST) go through the same dispatcher as alerts: the same journal, actuator,
metrics and log. Their bodies are optional JSON objects (every field has a default);
unknown fields are refused, since a misspelt ``hold`` must not silently mean false.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry

from sidecar.actions.action import Action
from sidecar.actions.breaker import CircuitState
from sidecar.actions.dispatch import Dispatcher
from sidecar.actions.path import ActionPath
from sidecar.core.errors import JournalError
from sidecar.core.times import iso
from sidecar.core.validation import Model
from sidecar.web import alerts_api
from sidecar.web.bodies import json_error, read_body

__all__ = ["BreakRequest", "FlushRequest", "ResetRequest", "path_routes", "routes"]


_Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class BreakRequest(Model, frozen=True):
    """Body of POST /v1/circuit/break."""

    reason: _Reason = "manual break"
    # Strict: "yes" or 1 must not pass for true in a request that decides an outage.
    hold: Annotated[bool, msgspec.Meta(description="Stay open until a manual reset.")] = False


class ResetRequest(Model, frozen=True):
    """Body of POST /v1/circuit/reset."""

    reason: _Reason = "manual reset"


class FlushRequest(Model, frozen=True):
    """Body of POST /v1/cache/flush."""

    reason: _Reason = "manual flush"


_R = TypeVar("_R", bound=Model)

_Handler = Callable[[web.Request], Awaitable[web.Response]]


def _accepting(model: type[_R], act: Callable[[_R], Awaitable[dict[str, Any]]]) -> _Handler:
    """A POST handler: validate the body, ``act`` on it, answer 202 with what it returns."""

    async def handle(request: web.Request) -> web.Response:
        req = await read_body(request, model)
        if isinstance(req, web.Response):
            return req
        try:
            accepted = await act(req)
        except JournalError:
            return json_error(503, "cannot journal the action, nothing was done; retry later")
        return web.json_response({"status": "accepted", **accepted}, status=202)

    return handle


def _action_view(action: Action) -> dict[str, Any]:
    return {
        "id": action.id,
        "action": action.kind,
        "reason": action.reason,
        "created": iso(action.created_ms),
    }


def routes(dispatcher: Dispatcher, *, dry_run: bool = False) -> list[web.RouteDef]:
    """The operator routes, bound to ``dispatcher``."""

    def circuit(state: CircuitState) -> dict[str, Any]:
        return {
            **state.view(),
            "dry_run": dry_run,
            "pending_actions": [_action_view(a) for a in dispatcher.pending.values()],
            # What the app last confirmed, and whether that is what was decided.
            **dispatcher.reconciler.view(),
        }

    async def get_circuit(request: web.Request) -> web.Response:
        return web.json_response(circuit(dispatcher.breaker.state))

    async def do_break(req: BreakRequest) -> dict[str, Any]:
        action, state = await dispatcher.manual_break(req.reason, req.hold)
        return {"action": _action_view(action), "circuit": circuit(state)}

    async def do_reset(req: ResetRequest) -> dict[str, Any]:
        action, state = await dispatcher.manual_reset(req.reason)
        return {"action": _action_view(action), "circuit": circuit(state)}

    async def do_flush(req: FlushRequest) -> dict[str, Any]:
        return {"action": _action_view(await dispatcher.manual_flush(req.reason))}

    return [
        web.get("/v1/circuit", get_circuit),
        web.post("/v1/circuit/break", _accepting(BreakRequest, do_break)),
        web.post("/v1/circuit/reset", _accepting(ResetRequest, do_reset)),
        web.post("/v1/cache/flush", _accepting(FlushRequest, do_flush)),
    ]


def path_routes(path: ActionPath, registry: CollectorRegistry) -> list[web.RouteDef]:
    """The whole action path over HTTP: ``POST /alerts`` and the operator API."""
    return alerts_api.routes(path.receiver, registry) + routes(
        path.dispatcher, dry_run=path.cfg.breaker.dry_run
    )
