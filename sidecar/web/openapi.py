"""GET /openapi.json: the sidecar's HTTP API as an OpenAPI 3.1 document.

The document is built from the routes the server registered, so that it describes what
this server serves (the evidence routes only where evidence is on, auth only where a
token is set) and nothing else: each route is looked up in ``OPERATIONS``, where every
route of the sidecar is described with every status its handler and the server's
middleware can answer. A route that is registered but not described is listed by
``document`` (and kept out of the document); the public-surface test fails on it, so
the description cannot drift from the routes.

Request bodies are the handlers' own msgspec types, as JSON Schema 2020-12 (which
OpenAPI 3.1 speaks) in ``components.schemas``; every error is the server's
``json_error`` body.
HEAD, which aiohttp answers for every GET, is the GET without a body.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import msgspec
from aiohttp import web

from sidecar import __version__
from sidecar.actions.receiver import MAX_ALERTS, WEBHOOK_VERSION, WebhookAlert
from sidecar.core import validation
from sidecar.evidence.bundles import FILES
from sidecar.web.actions_api import BreakRequest, FlushRequest, ResetRequest
from sidecar.web.evidence_api import CaptureRequest

__all__ = ["OPERATIONS", "PATH", "document", "routes"]

PATH = "/openapi.json"

Schema = dict[str, Any]

_STR: Schema = {"type": "string"}
_INT: Schema = {"type": "integer"}
_TIME: Schema = {"type": "string", "format": "date-time"}
_ERROR: Schema = {
    "type": "object",
    "required": ["status", "error"],
    "properties": {"status": {"const": "error"}, "error": _STR},
    "description": "Every error: a message for people; some add fields (``reason``, "
    "``errorType``).",
}
_OBJECT: Schema = {"type": "object"}
_SUCCESS: Schema = {
    "type": "object",
    "required": ["status", "data"],
    "properties": {"status": {"const": "success"}, "data": _OBJECT},
}

_WHY = {
    400: "The body could not be read (a broken Content-Encoding or chunked framing), or "
    "a query parameter is invalid.",
    401: "The bearer token is missing or wrong.",
    404: "No such evidence bundle or file.",
    408: "The body did not arrive within server.body_timeout.",
    409: "Evidence capture is disabled.",
    413: "The body is larger than server.max_body_bytes.",
    415: "The body is not application/json.",
    422: "The body is JSON but not what this operation takes; nothing was done.",
    502: "This pod's alerts were acted on, but an owner did not accept the alerts "
    "forwarded to it (fleet.forward): retry the delivery.",
    500: "A bug in the sidecar (logged and counted), or for /-/reload: the new config "
    "or a rule file is invalid and the old ones keep running.",
    503: "The state directory refuses writes (full or read-only): nothing was done; "
    "retry later. For /v1/evidence: the capture failed.",
}
_BODY_ERRORS = (400, 408, 413)
"""What the server answers for any request that carries a body, before the handler: a
GET with a body too."""


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(code: int, why: str | None = None) -> Schema:
    return _json({"$ref": "#/components/schemas/Error"}, why or _WHY[code])


def _op(
    summary: str,
    ok: tuple[int, Schema],
    errors: Iterable[int] = (),
    *,
    auth: bool = False,
    body: Schema | None = None,
    body_required: bool = False,
    params: list[Schema] | None = None,
) -> Schema:
    """One operation: its success answer, its errors (500 always), auth and body."""
    responses = {str(ok[0]): ok[1]}
    codes = set(errors) | set(_BODY_ERRORS) | {500}
    if auth:
        codes.add(401)
    for code in sorted(codes):
        responses[str(code)] = _error(code)
    out: Schema = {"summary": summary, "responses": responses}
    if params:
        out["parameters"] = params
    if body is not None:
        out["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": body}},
        }
    if auth:
        out["security"] = [{"bearerAuth": []}]
    return out


_TYPES: tuple[type, ...] = (
    BreakRequest,
    ResetRequest,
    FlushRequest,
    CaptureRequest,
    WebhookAlert,
)
_REFS, _COMPONENTS = msgspec.json.schema_components(
    _TYPES, schema_hook=validation.schema_hook, ref_template="#/components/schemas/{name}"
)
"""Each request body's ``$ref``, and the schemas they refer to."""


def _model(model: type) -> Schema:
    return dict(_REFS[_TYPES.index(model)])


_PROBE = _json(
    {
        "type": "object",
        "required": ["status", "detail"],
        "properties": {"status": {"enum": ["ok", "unavailable"]}, "detail": _STR},
    },
    "The sidecar's own state; never the app's.",
)


def _probe(summary: str) -> Schema:
    op = _op(summary, (200, _PROBE))
    op["responses"]["503"] = {**_PROBE, "description": "Not healthy, or not ready."}
    return op


_ACTION: Schema = {
    "type": "object",
    "required": ["id", "action", "reason", "created"],
    "properties": {"id": _STR, "action": _STR, "reason": _STR, "created": _TIME},
}
_CIRCUIT: Schema = {
    "type": "object",
    "required": ["state", "since", "reason", "source", "held_by", "desired", "generation"],
    "properties": {
        "state": {"enum": ["closed", "open", "held"]},
        "since": _TIME,
        "reason": _STR,
        "source": _STR,
        "held_by": {"type": "array", "items": _OBJECT},
        "earliest_reset": {"anyOf": [_TIME, {"type": "null"}]},
        "desired": {"enum": ["open", "closed"]},
        "generation": _INT,
        "dry_run": {"type": "boolean"},
        "pending_actions": {"type": "array", "items": _ACTION},
        "in_sync": {"type": "boolean"},
    },
}
_ACCEPTED = _json(
    {
        "type": "object",
        "required": ["status", "action"],
        "properties": {"status": {"const": "accepted"}, "action": _ACTION, "circuit": _CIRCUIT},
    },
    "Journaled; the call to the app runs in the background.",
)
_WEBHOOK: Schema = {
    "type": "object",
    "description": "Alertmanager's webhook notification; fields not listed are ignored.",
    "required": ["version", "alerts"],
    "properties": {
        "version": {"const": WEBHOOK_VERSION},
        "groupKey": _STR,
        "truncatedAlerts": {"type": "integer", "minimum": 0},
        "alerts": {
            "type": "array",
            "maxItems": MAX_ALERTS,
            # Each alert is validated on its own: one that is not a WebhookAlert is
            # refused alone (listed in ``refused``) and the others are acted on.
            "items": {"description": "A WebhookAlert (components.schemas)."},
        },
    },
    "examples": [
        {
            "version": WEBHOOK_VERSION,
            "groupKey": '{}:{alertname="CacheGrowing"}',
            "truncatedAlerts": 0,
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "CacheGrowing", "action": "cache_flush"},
                    "annotations": {"summary": "the cache grows"},
                    "startsAt": "2024-01-01T00:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                }
            ],
        }
    ],
}
_DELIVERED = _json(
    {
        "type": "object",
        "required": ["status", "alerts", "duplicates", "cooled_down", "forwarded", "actions"],
        "properties": {
            "status": {"const": "success"},
            "alerts": _INT,
            "duplicates": _INT,
            "cooled_down": _INT,
            "forwarded": _INT,
            "actions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "action"],
                    "properties": {"id": _STR, "action": _STR},
                },
            },
            "refused": {"type": "array", "items": _OBJECT},
            "refused_count": _INT,
        },
    },
    "The alerts' actions are journaled (fsynced); the calls run in the background.",
)
_RULES_TYPE = {
    "name": "type",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "pattern": "^([Aa][Ll][Ee][Rr][Tt]|[Rr][Ee][Cc][Oo][Rr][Dd])?$"},
    "description": "alert or record (any case): only those rules; anything else is 400.",
}
_EVIDENCE_ID = {"name": "id", "in": "path", "required": True, "schema": _STR}
_EVIDENCE_FILE = {
    "name": "file",
    "in": "path",
    "required": True,
    "schema": {"enum": list(FILES)},
    "description": "One of the files a bundle may hold; another name is 404.",
}
_FILE = {
    "description": "The file: a profile (application/octet-stream), text or JSON.",
    "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "text/plain": {"schema": _STR},
        "application/json": {"schema": {}},
    },
}


_BUNDLE_LINKS = {
    name: {
        "operationId": f"get {path}",
        "parameters": {"id": "$response.body#/data/id"},
        "description": "The bundle just captured.",
    }
    for name, path in [("bundle", "/v1/evidence/{id}"), ("file", "/v1/evidence/{id}/{file}")]
}


def _file() -> Schema:
    op = _op(
        "One file of a bundle",
        (200, _FILE),
        [404],
        auth=True,
        params=[_EVIDENCE_ID, _EVIDENCE_FILE],
    )
    # Served as a static file: ranges and conditional requests are answered.
    op["responses"].update(
        {
            "206": {**_FILE, "description": "The range asked for (Range)."},
            "304": {"description": "Not modified (If-Modified-Since)."},
            "412": {"description": "A precondition failed (If-Unmodified-Since)."},
            "416": {"description": "The range is not satisfiable."},
        }
    )
    return op


def _manual(summary: str, model: type) -> Schema:
    """An operator's action (break, reset, flush): journaled, then called in the background."""
    return _op(summary, (202, _ACCEPTED), [415, 422, 503], auth=True, body=_model(model))


def _rules(summary: str) -> Schema:
    return _op(summary, (200, _json(_SUCCESS, "Prometheus's shape.")), [400], params=[_RULES_TYPE])


OPERATIONS: dict[tuple[str, str], Schema] = {
    ("GET", "/"): _op(
        "The status page",
        (200, {"description": "HTML", "content": {"text/html": {"schema": _STR}}}),
    ),
    ("GET", "/healthz"): _probe("Liveness: the sidecar's loops run"),
    ("GET", "/-/healthy"): _probe("Liveness, at Prometheus's path"),
    ("GET", "/readyz"): _probe("Readiness: config and rules loaded, server listening"),
    ("GET", "/-/ready"): _probe("Readiness, at Prometheus's path"),
    ("GET", "/metrics"): _op(
        "The sidecar's metrics",
        (200, {"description": "Prometheus text format 0.0.4", "content": {"text/plain": {}}}),
    ),
    ("GET", PATH): _op("This document", (200, _json(_OBJECT, "OpenAPI 3.1"))),
    ("GET", "/api/v1/rules"): _rules("Rule groups, as Prometheus's /api/v1/rules"),
    ("GET", "/v1/rules"): _rules("Rule groups (alias of /api/v1/rules)"),
    ("GET", "/api/v1/alerts"): _op(
        "Active alerts, as Prometheus's /api/v1/alerts", (200, _json(_SUCCESS, "Alerts"))
    ),
    ("GET", "/v1/alerts"): _op(
        "Active alerts (alias of /api/v1/alerts)", (200, _json(_SUCCESS, "Alerts"))
    ),
    ("GET", "/v1/circuit"): _op("The circuit", (200, _json(_CIRCUIT, "The circuit now"))),
    ("POST", "/alerts"): _op(
        "Alertmanager's webhook",
        (200, _DELIVERED),
        [415, 422, 502, 503],
        auth=True,
        body=_WEBHOOK,
        body_required=True,
    ),
    ("POST", "/v1/circuit/break"): _manual("Break the circuit by hand", BreakRequest),
    ("POST", "/v1/circuit/reset"): _manual("Reset the circuit by hand", ResetRequest),
    ("POST", "/v1/cache/flush"): _manual("Flush the app's cache by hand", FlushRequest),
    ("POST", "/-/reload"): _op(
        "Re-read the config and rules",
        (200, _json({"type": "object", "properties": {"status": {"const": "success"}}}, "Done")),
        auth=True,
    ),
    ("GET", "/v1/evidence"): _op(
        "Evidence bundles, newest first", (200, _json(_SUCCESS, "Bundles")), auth=True
    ),
    ("POST", "/v1/evidence"): _op(
        "Capture evidence now",
        (201, {**_json(_SUCCESS, "The new bundle"), "links": _BUNDLE_LINKS}),
        [409, 415, 422, 503],
        auth=True,
        body=_model(CaptureRequest),
    ),
    ("GET", "/v1/evidence/{id}"): _op(
        "One bundle: its meta and growth report",
        (200, _json(_SUCCESS, "The bundle")),
        [404],
        auth=True,
        params=[_EVIDENCE_ID],
    ),
    ("GET", "/v1/evidence/{id}/{file}"): _file(),
}


def _head(get: Schema) -> Schema:
    op = copy.deepcopy(get)
    op["summary"] = f"{get['summary']} (headers only)"
    for response in op["responses"].values():
        response.pop("content", None)
    return op


def document(router: web.UrlDispatcher, *, auth: bool) -> tuple[Schema, list[str]]:
    """The document for ``router``'s routes, and the routes ``OPERATIONS`` lacks.

    ``auth`` False (no token configured) drops the security requirements.
    """
    paths: dict[str, dict[str, Schema]] = {}
    missing: list[str] = []
    for route in router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        method = route.method
        spec = OPERATIONS.get(("GET" if method == "HEAD" else method, path))
        if spec is None:
            missing.append(f"{method} {path}")
            continue
        op = _head(spec) if method == "HEAD" else copy.deepcopy(spec)
        if not auth:
            op.pop("security", None)
            op["responses"].pop("401", None)
        op["operationId"] = f"{method.lower()} {path}"
        paths.setdefault(path, {})[method.lower()] = op
    doc: Schema = {
        "openapi": "3.1.0",
        "info": {"title": "leak-sidecar", "version": __version__},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": _ERROR, **copy.deepcopy(_COMPONENTS)},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
    return doc, missing


def routes(*, auth: bool) -> list[web.RouteDef]:
    """``GET /openapi.json``, built at its first request (every route is added by then);
    ``auth`` says whether the server asks for a token."""
    cache: Schema = {}

    async def handle(request: web.Request) -> web.Response:
        if not cache:
            cache.update(document(request.app.router, auth=auth)[0])
        return web.json_response(cache)

    return [web.get(PATH, handle)]
