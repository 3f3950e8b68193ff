"""The HTTP shell: auth on state-changing methods, probes, body cap, /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from sidecar.web.server import build_app

calls: list[bytes] = []


async def _echo(request: web.Request) -> web.Response:
    calls.append(await request.read())
    return web.json_response({"ok": True})


def _app(registry: CollectorRegistry, token: str | None, ready: bool = True) -> web.Application:
    return build_app(
        registry=registry,
        token=token,
        max_body_bytes=64,
        health=lambda: (True, "loops running"),
        ready=lambda: (ready, "rules loaded" if ready else "loading rules"),
        routes=[web.post("/echo", _echo), web.get("/echo", _echo)],
    )


@pytest.fixture
async def client(
    registry: CollectorRegistry,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    calls.clear()
    async with TestClient(TestServer(_app(registry, "tok"), host="127.0.0.1")) as c:
        yield c


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "missing bearer token: send 'Authorization: Bearer <token>'"),
        (
            {"Authorization": "Basic dG9r"},
            "missing bearer token: send 'Authorization: Bearer <token>'",
        ),
        ({"Authorization": "Bearer wrong"}, "invalid bearer token"),
        ({"Authorization": "Bearer tok\u00e9"}, "invalid bearer token"),
    ],
)
async def test_post_without_the_right_token_is_401_and_runs_nothing(
    client: TestClient[web.Request, web.Application], headers: dict[str, str], error: str
) -> None:
    """Every POST needs the bearer token; the handler never runs without it."""
    resp = await client.post("/echo", data=b"{}", headers=headers)
    assert resp.status == 401
    assert await resp.json() == {"status": "error", "error": error}
    assert calls == []


async def test_post_with_the_token_runs(client: TestClient[web.Request, web.Application]) -> None:
    """The right token lets the request through, case-insensitive scheme."""
    resp = await client.post("/echo", data=b"{}", headers={"Authorization": "bearer tok"})
    assert resp.status == 200
    assert calls == [b"{}"]


async def test_get_needs_no_token(client: TestClient[web.Request, web.Application]) -> None:
    """Reads are open: probes and Prometheus scrape without credentials."""
    assert (await client.get("/echo")).status == 200


async def test_body_over_the_cap_is_413(client: TestClient[web.Request, web.Application]) -> None:
    """A body past max_body_bytes is refused with a JSON 413 and not handled."""
    resp = await client.post("/echo", data=b"x" * 65, headers={"Authorization": "Bearer tok"})
    assert resp.status == 413
    body = await resp.json()
    assert body["status"] == "error"
    assert body["error"].startswith("request body too large: ")
    assert calls == []


async def test_probes_report_their_detail(client: TestClient[web.Request, web.Application]) -> None:
    """/healthz and /readyz answer 200 with what they checked."""
    assert await (await client.get("/healthz")).json() == {
        "status": "ok",
        "detail": "loops running",
    }
    assert await (await client.get("/readyz")).json() == {"status": "ok", "detail": "rules loaded"}


async def test_not_ready_is_503(registry: CollectorRegistry) -> None:
    """/readyz is 503 until the sidecar says it is ready."""
    async with TestClient(TestServer(_app(registry, None, ready=False), host="127.0.0.1")) as c:
        resp = await c.get("/readyz")
        assert resp.status == 503
        assert await resp.json() == {"status": "unavailable", "detail": "loading rules"}


async def test_no_token_configured_means_no_auth(registry: CollectorRegistry) -> None:
    """Without a token (loopback only, or explicitly allowed) POSTs are accepted."""
    calls.clear()
    async with TestClient(TestServer(_app(registry, None), host="127.0.0.1")) as c:
        assert (await c.post("/echo", data=b"1")).status == 200
    assert calls == [b"1"]


async def test_metrics_exposes_the_registry(
    client: TestClient[web.Request, web.Application], registry: CollectorRegistry
) -> None:
    """/metrics is the registry in Prometheus text format."""
    Counter("leak_sidecar_test_events_total", "Test events.", registry=registry).inc(3)
    resp = await client.get("/metrics")
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    fams = {f.name: f for f in text_string_to_metric_families(await resp.text())}
    assert fams["leak_sidecar_test_events"].samples[0].value == 3.0


async def test_unknown_route_is_json_404(client: TestClient[web.Request, web.Application]) -> None:
    """Errors are JSON, whatever produced them."""
    resp = await client.get("/nope")
    assert resp.status == 404
    assert await resp.json() == {"status": "error", "error": "Not Found"}
