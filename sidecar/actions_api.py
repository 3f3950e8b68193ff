"""The operator's API: see the circuit, break, reset and flush by hand.

``GET /v1/circuit`` shows the state, since when, why, who asked, the alerts holding it
open and the earliest automatic reset. The POSTs (authenticated by the server like
every POST) go through the same dispatcher as alerts: the same journal, actuator,
metrics and log. Their bodies are optional JSON objects (every field has a default);
unknown fields are refused, since a misspelt ``hold`` must not silently mean false.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sidecar.actions import Action, iso
from sidecar.breaker import CircuitState
from sidecar.dispatch import Dispatcher
from sidecar.journal import JournalError
from sidecar.receiver import format_validation_error
from sidecar.server import json_error

__all__ = ["BreakRequest", "FlushRequest", "ResetRequest", "routes"]

_JSON = "application/json"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BreakRequest(_Request):
    """Body of POST /v1/circuit/break."""

    reason: str = Field("manual break", min_length=1, max_length=500)
    # Strict: "yes" or 1 must not pass for true in a request that decides an outage.
    hold: bool = Field(False, strict=True, description="Stay open until a manual reset.")


class ResetRequest(_Request):
    """Body of POST /v1/circuit/reset."""

    reason: str = Field("manual reset", min_length=1, max_length=500)


class FlushRequest(_Request):
    """Body of POST /v1/cache/flush."""

    reason: str = Field("manual flush", min_length=1, max_length=500)


_R = TypeVar("_R", bound=_Request)


class _Invalid(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


async def _body(request: web.Request, model: type[_R]) -> _R:
    body = await request.read()
    if not body.strip():
        return model()
    if request.content_type != _JSON:
        raise _Invalid(
            json_error(
                415, f"unsupported content type {request.content_type!r}, expected {_JSON!r}"
            )
        )
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise _Invalid(
            json_error(422, f"invalid request body: {format_validation_error(exc)}")
        ) from exc


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
        }

    async def get_circuit(request: web.Request) -> web.Response:
        return web.json_response(circuit(dispatcher.breaker.state))

    async def post_break(request: web.Request) -> web.Response:
        try:
            req = await _body(request, BreakRequest)
            action, state = await dispatcher.manual_break(req.reason, req.hold)
        except _Invalid as exc:
            return exc.response
        except JournalError:
            return _unjournaled()
        return web.json_response(
            {"status": "accepted", "action": _action_view(action), "circuit": circuit(state)},
            status=202,
        )

    async def post_reset(request: web.Request) -> web.Response:
        try:
            req = await _body(request, ResetRequest)
            action, state = await dispatcher.manual_reset(req.reason)
        except _Invalid as exc:
            return exc.response
        except JournalError:
            return _unjournaled()
        return web.json_response(
            {"status": "accepted", "action": _action_view(action), "circuit": circuit(state)},
            status=202,
        )

    async def post_flush(request: web.Request) -> web.Response:
        try:
            req = await _body(request, FlushRequest)
            action = await dispatcher.manual_flush(req.reason)
        except _Invalid as exc:
            return exc.response
        except JournalError:
            return _unjournaled()
        return web.json_response({"status": "accepted", "action": _action_view(action)}, status=202)

    return [
        web.get("/v1/circuit", get_circuit),
        web.post("/v1/circuit/break", post_break),
        web.post("/v1/circuit/reset", post_reset),
        web.post("/v1/cache/flush", post_flush),
    ]


def _unjournaled() -> web.Response:
    return json_error(503, "cannot journal the action, nothing was done; retry later")
