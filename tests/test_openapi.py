"""GET /openapi.json: every registered route described, with its statuses, errors and auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from conftest import running
from jsonschema import Draft202012Validator
from prometheus_client import CollectorRegistry

from sidecar.actions.receiver import WebhookAlert
from sidecar.core.config import Config
from sidecar.core.validation import convert
from sidecar.supervisor import Sidecar
from sidecar.web.actions_api import BreakRequest
from sidecar.web.openapi import OPERATIONS, document
from sidecar.web.server import build_app

ROOT = Path(__file__).parent.parent
TOKEN = "openapi-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ERRORS = ["400", "401", "408", "413", "415", "422", "500", "503"]
"""What a POST of the action path can answer besides success."""
MISSING_TOKEN = {
    "status": "error",
    "error": "missing bearer token: send 'Authorization: Bearer <token>'",
}


@pytest.fixture
async def sidecar(tmp_path: Path, registry: CollectorRegistry) -> AsyncIterator[Sidecar]:
    """The whole sidecar with the shipped pack and a token, listening on loopback."""
    cfg = Config.validate(
        {
            "app": {"base_url": "http://127.0.0.1:9", "memory_limit_bytes": 2**31},
            "rules": {"files": [str(ROOT / "rules" / "*.yml")]},
            "server": {"listen": "127.0.0.1:0"},
            "state_dir": str(tmp_path),
            "token": TOKEN,
        }
    )
    async with running(Sidecar(cfg, registry=registry)) as s:
        yield s


async def _get(s: Sidecar, path: str, headers: dict[str, str] | None = None) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{s.port}{path}", headers=headers) as resp,
    ):
        assert resp.status == 200
        return await resp.json()


async def test_every_registered_route_is_described_and_nothing_else(sidecar: Sidecar) -> None:
    """The document served has one operation per route the server registered, HEAD included:
    a route added without a description is listed as missing, and fails here."""
    assert sidecar.server is not None
    router = sidecar.server.app.router
    registered = {
        (r.method.lower(), r.resource.canonical) for r in router.routes() if r.resource is not None
    }
    assert document(router, auth=True)[1] == []
    doc = await _get(sidecar, "/openapi.json")
    described = {(m, path) for path, ops in doc["paths"].items() for m in ops}
    assert described == registered
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"] == {
        "bearerAuth": {"type": "http", "scheme": "bearer"}
    }


async def test_post_alerts_is_described_with_every_status_auth_and_the_error_shape(
    sidecar: Sidecar,
) -> None:
    """POST /alerts: each status the handler and the middleware can answer, the bearer
    token, the error body; the operator bodies are the handlers' own models."""
    doc = await _get(sidecar, "/openapi.json")
    op = doc["paths"]["/alerts"]["post"]
    assert sorted(op["responses"]) == sorted(["200", "502", *ERRORS])
    assert op["security"] == [{"bearerAuth": []}]
    assert op["requestBody"]["required"] is True
    error = {"$ref": "#/components/schemas/Error"}
    assert op["responses"]["503"]["content"]["application/json"]["schema"] == error
    assert doc["components"]["schemas"]["Error"]["required"] == ["status", "error"]
    brk = doc["paths"]["/v1/circuit/break"]["post"]
    assert sorted(brk["responses"]) == ["202", *ERRORS]
    schema = brk["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/BreakRequest"}
    assert doc["components"]["schemas"]["BreakRequest"] == {
        "title": "BreakRequest",
        "description": BreakRequest.__doc__,
        "type": "object",
        "properties": {
            "reason": {
                "type": "string",
                "minLength": 1,
                "maxLength": 500,
                "default": "manual break",
            },
            "hold": {
                "type": "boolean",
                "default": False,
                "description": "Stay open until a manual reset.",
            },
        },
        "required": [],
        "additionalProperties": False,
    }
    for path, name in [
        ("/v1/circuit/reset", "ResetRequest"),
        ("/v1/cache/flush", "FlushRequest"),
        ("/v1/evidence", "CaptureRequest"),
    ]:
        body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"] == {"$ref": f"#/components/schemas/{name}"}
    alert = doc["components"]["schemas"]["WebhookAlert"]
    assert alert["required"] == ["status", "labels", "startsAt"]
    assert alert["properties"]["startsAt"] == {"type": "string", "format": "date-time"}
    assert "additionalProperties" not in alert  # Alertmanager adds fields over time
    assert "security" not in doc["paths"]["/v1/circuit"]["get"]
    assert doc["paths"]["/v1/evidence"]["get"]["security"] == [{"bearerAuth": []}]
    assert "content" not in doc["paths"]["/v1/circuit"]["head"]["responses"]["200"]


async def test_401s_are_counted_by_route(sidecar: Sidecar, registry: CollectorRegistry) -> None:
    """The auth middleware's 401s and the evidence API's own are counted, by route."""
    base = f"http://127.0.0.1:{sidecar.port}"
    async with aiohttp.ClientSession() as session:
        for method, path in [
            ("POST", "/v1/circuit/break"),
            ("POST", "/v1/circuit/break"),
            ("POST", "/no/such/path"),
            ("GET", "/v1/evidence"),
        ]:
            async with session.request(method, base + path) as resp:
                assert (resp.status, await resp.json()) == (401, MISSING_TOKEN)
        async with session.post(base + "/v1/circuit/break", headers=AUTH) as resp:
            assert resp.status == 202

    def count(route: str) -> float | None:
        return registry.get_sample_value("leak_sidecar_http_unauthorized_total", {"route": route})

    assert count("/v1/circuit/break") == 2.0
    assert count("unmatched") == 1.0
    assert count("/v1/evidence") == 1.0
    assert count("/alerts") is None


def _app(*routes: web.RouteDef, token: str | None = TOKEN) -> web.Application:
    return build_app(
        registry=CollectorRegistry(),
        token=token,
        max_body_bytes=1024,
        health=lambda: (True, "ok"),
        ready=lambda: (True, "ok"),
        routes=routes,
    )


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({})


def test_a_route_added_without_a_description_is_reported_and_left_out() -> None:
    """An undescribed route is named, not guessed at."""
    app = _app(web.post("/v1/new", _ok), web.get("/v1/circuit", _ok))
    doc, missing = document(app.router, auth=True)
    assert missing == ["POST /v1/new"]
    assert "/v1/new" not in doc["paths"]
    assert sorted(doc["paths"]["/v1/circuit"]) == ["get", "head"]


def test_without_a_token_no_operation_asks_for_one() -> None:
    """No token configured (loopback only): no security requirement, no 401."""
    app = _app(web.post("/v1/circuit/break", _ok), token=None)
    doc, _ = document(app.router, auth=False)
    op = doc["paths"]["/v1/circuit/break"]["post"]
    assert "security" not in op
    assert "401" not in op["responses"]


async def test_a_wrong_method_is_405_with_its_allow_header() -> None:
    """RFC 9110: a 405 says which methods the resource allows, in the JSON error too."""
    async with TestClient(TestServer(_app(web.post("/v1/new", _ok)))) as client:
        resp = await client.put("/v1/new", headers=AUTH)
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"
        assert await resp.json() == {"status": "error", "error": "Method Not Allowed"}


def test_the_body_schemas_are_json_schema_2020_12_and_agree_with_the_decoders() -> None:
    """Each component is a valid JSON Schema 2020-12; the webhook's example alert passes
    both its schema and the decoder, and a body the schema refuses the decoder refuses too."""
    doc, _ = document(_app().router, auth=True)
    schemas = doc["components"]["schemas"]
    assert sorted(schemas) == [
        "BreakRequest",
        "CaptureRequest",
        "Error",
        "FlushRequest",
        "ResetRequest",
        "WebhookAlert",
    ]
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)
    webhook = OPERATIONS[("POST", "/alerts")]["requestBody"]["content"]["application/json"]
    example = webhook["schema"]["examples"][0]["alerts"][0]
    Draft202012Validator(schemas["WebhookAlert"]).validate(example)
    assert convert(example, WebhookAlert).to_alert().labels["action"] == "cache_flush"
    refused = {"reason": "", "hold": True}
    assert not Draft202012Validator(schemas["BreakRequest"]).is_valid(refused)
    with pytest.raises(msgspec.ValidationError):
        BreakRequest.validate(refused)
