"""JSON in and out of the HTTP API: the error body every route answers with, and a
request body read as a strict msgspec model (415 when it is not JSON, 422 naming the one
problem, the model's defaults when empty)."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from aiohttp import web

from sidecar.core.errors import clip
from sidecar.core.validation import Model, decode_json, json_problem

__all__ = ["json_error", "read_body", "refuse_non_json"]

_JSON = "application/json"
_M = TypeVar("_M", bound=Model)


def json_error(status: int, message: str, **extra: object) -> web.Response:
    """A JSON error body ``{"status": "error", "error": message, ...}`` with ``status``."""
    return web.json_response({"status": "error", "error": message, **extra}, status=status)


def refuse_non_json(request: web.Request) -> web.Response | None:
    """The 415 answer to a request whose content type is not JSON, or None."""
    if request.content_type == _JSON:
        return None
    return json_error(415, f"unsupported content type {request.content_type!r}, expected {_JSON!r}")


async def read_body(request: web.Request, model: type[_M]) -> _M | web.Response:
    """The request body as ``model`` (its defaults when empty), or the 415/422 answer that
    refuses it; a 422 names the one problem, never the body's values."""
    body = await request.read()
    if not body.strip():
        return model()
    refused = refuse_non_json(request)
    if refused is not None:
        return refused
    try:
        # Strict: "yes" or 1 must not pass for true, nor 5 for a reason.
        return decode_json(body, model)
    except msgspec.DecodeError as exc:
        return json_error(422, f"invalid request body: {clip(json_problem(exc).line())}")
