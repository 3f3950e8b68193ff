"""Evidence bundles over HTTP: list, read, fetch a file, capture on demand.

``GET /v1/evidence`` lists the bundles, newest first, with the baseline's time;
``GET /v1/evidence/{id}`` is a bundle's meta and growth report; ``GET
/v1/evidence/{id}/{file}`` serves one of its files (``go tool pprof`` opens
``heap.pb.gz``); ``POST /v1/evidence`` captures now and answers with the bundle.
Profiles hold the app's function names, paths and sometimes data: unlike the rest of
the read API, every route here needs the bearer token when one is configured, GETs too.
"""

from __future__ import annotations

import hmac
import json
from typing import Annotated, Any

import msgspec
from aiohttp import web

from sidecar.core.durable import in_thread
from sidecar.core.errors import EvidenceError
from sidecar.core.validation import Model
from sidecar.evidence.bundles import BASELINE
from sidecar.evidence.capture import Evidence, EvidenceDisabled
from sidecar.web.bodies import json_error, read_body
from sidecar.web.server import TokenSource

__all__ = ["routes"]

_TYPES = {
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".gz": "application/octet-stream",
}


class CaptureRequest(Model, frozen=True):
    """``POST /v1/evidence``: why the operator asks (logged)."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)] = "manual capture"


def _refused(request: web.Request, source: str | TokenSource | None) -> web.Response | None:
    token = source() if callable(source) else source
    if not token:
        return None
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        return json_error(401, "missing bearer token: send 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token.encode()):
        return json_error(401, "invalid bearer token")
    return None


def routes(evidence: Evidence, *, token: str | TokenSource | None) -> list[web.RouteDef]:
    """The evidence API on ``evidence``'s bundles; ``token`` guards every route."""
    bundles = evidence.bundles

    def listing() -> dict[str, Any]:
        metas = [m for i in reversed(bundles.ids()) if (m := bundles.meta(i)) is not None]
        base = bundles.meta(BASELINE)
        return {
            "status": "success",
            "data": {
                "enabled": evidence.cfg.enabled,
                "capturing": evidence.running,
                "bytes": bundles.total_bytes(),
                "baseline": base.get("time") if base else None,
                "bundles": [{**m, "url": evidence.url(str(m.get("id")))} for m in metas],
            },
        }

    async def list_all(request: web.Request) -> web.Response:
        if (refused := _refused(request, token)) is not None:
            return refused
        return web.json_response(await in_thread(listing))

    async def one(request: web.Request) -> web.Response:
        if (refused := _refused(request, token)) is not None:
            return refused
        bundle = request.match_info["id"]
        meta = await in_thread(bundles.meta, bundle)
        if meta is None or bundle == BASELINE:
            return json_error(404, f"no evidence bundle {bundle[:80]!r}")
        text = await in_thread(bundles.read, bundle, "report.json")
        rep = json.loads(text) if text else None
        return web.json_response({"status": "success", "data": {**meta, "report": rep}})

    async def file(request: web.Request) -> web.StreamResponse:
        if (refused := _refused(request, token)) is not None:
            return refused
        bundle, name = request.match_info["id"], request.match_info["file"]
        path = await in_thread(bundles.file, bundle, name)
        if path is None:
            return json_error(404, f"no file {name[:80]!r} in evidence bundle {bundle[:80]!r}")
        kind = _TYPES.get(path.suffix, "application/octet-stream")
        headers = {"Content-Type": kind, "Cache-Control": "no-store"}
        if path.suffix == ".gz":
            headers["Content-Disposition"] = f'attachment; filename="{bundle}-{name}"'
        return web.FileResponse(path, headers=headers)

    async def capture(request: web.Request) -> web.Response:
        req = await read_body(request, CaptureRequest)
        if isinstance(req, web.Response):
            return req
        try:
            meta = await evidence.capture(req.reason)
        except EvidenceDisabled as exc:
            return json_error(409, str(exc))
        except EvidenceError as exc:
            return json_error(503, f"{exc}; retry later", reason=exc.reason)
        return web.json_response(
            {"status": "success", "data": {**meta, "url": evidence.url(meta["id"])}}, status=201
        )

    return [
        web.get("/v1/evidence", list_all),
        web.post("/v1/evidence", capture),
        web.get("/v1/evidence/{id}", one),
        web.get("/v1/evidence/{id}/{file}", file),
    ]
