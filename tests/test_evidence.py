"""The evidence stage: triggers, one capture at a time, cooldowns, bounds, and its API."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from actions_support import alert as webhook_alert
from actions_support import rig, webhook
from aiohttp import web
from conftest import free_port
from prometheus_client import CollectorRegistry
from status_support import parse_html, rich_view
from test_evidence_report import DUMP, _heap

from sidecar.actions.action import Action
from sidecar.actions.routing import Router
from sidecar.core.config import EvidenceConfig
from sidecar.core.config_actions import ActionsConfig
from sidecar.core.errors import EvidenceError
from sidecar.core.model import Alert
from sidecar.evidence.bundles import Bundles, new_id
from sidecar.evidence.capture import Evidence
from sidecar.web import evidence_api
from sidecar.web.server import Server, build_app
from sidecar.web.status_render import render_page

TOKEN = "s3cret"


class FakePprof:
    """A stand-in for a Go app's pprof listener: counts GETs, can hold answers back."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.release = asyncio.Event()
        self.release.set()
        self.heap = _heap([([1, 2, 3, 4], 40, 64000), ([1, 4], 1, 1000)])
        self.url = ""

    async def _heap(self, request: web.Request) -> web.Response:
        self.hits["heap"] = self.hits.get("heap", 0) + 1
        await self.release.wait()
        return web.Response(body=self.heap, content_type="application/octet-stream")

    async def _goroutine(self, request: web.Request) -> web.Response:
        self.hits["goroutine"] = self.hits.get("goroutine", 0) + 1
        assert request.query["debug"] == "1"
        return web.Response(text=DUMP)

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[FakePprof]:
        app = web.Application()
        app.router.add_get("/debug/pprof/heap", self._heap)
        app.router.add_get("/debug/pprof/goroutine", self._goroutine)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            self.release.set()
            await runner.cleanup()


def _alert(name: str, **labels: str) -> Alert:
    return Alert(
        status="firing",
        labels={"alertname": name, **labels},
        annotations={"summary": "s"},
        starts_at=dt.datetime(2026, 12, 3, tzinfo=dt.UTC),
        fingerprint=f"{abs(hash(name)):016x}"[:16],
    )


def _cfg(url: str, **extra: Any) -> EvidenceConfig:
    return EvidenceConfig.validate(
        {"pprof_url": url, "warmup": "1h", "alertnames": ["HeapFloorRising"], **extra}
    )


@asynccontextmanager
async def _stage(
    cfg: EvidenceConfig,
    tmp_path: Path,
    registry: CollectorRegistry,
    struggling: Callable[[], bool] = lambda: False,
    asks: Callable[[Mapping[str, str]], bool] = lambda labels: False,
) -> AsyncIterator[Evidence]:
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        evidence = Evidence(
            cfg,
            state_dir=tmp_path,
            session=session,
            registry=registry,
            struggling=struggling,
            asks=asks,
        )
        task = asyncio.create_task(evidence.run(stop))
        try:
            yield evidence
        finally:
            stop.set()
            async with asyncio.timeout(5):
                await task


async def _eventually(check: Callable[[], object]) -> None:
    async with asyncio.timeout(5):
        # What is polled is the disk or a fake's counter: there is no event to wait on.
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def _bundle(evidence: Evidence, bundle: str) -> dict[str, Any]:
    await _eventually(lambda: not evidence.pending)
    meta = evidence.bundles.meta(bundle)
    assert meta is not None
    return meta


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def _events(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_bundles_keep_the_newest_within_count_and_bytes(tmp_path: Path) -> None:
    """Past max_bundles or max_bytes the oldest bundles go; the one just written stays."""
    bundles = Bundles(tmp_path, max_bundles=3, max_bytes=10_000)
    ids = [new_id(1_700_000_000 + i) for i in range(5)]
    dropped = [bundles.save(i, {"report.txt": b"x" * 100}, {"id": i}) for i in ids]
    assert dropped == [[], [], [], [ids[0]], [ids[1]]]
    assert bundles.ids() == ids[2:]
    big = new_id(1_700_000_100)
    assert bundles.save(big, {"heap.pb.gz": b"x" * 20_000}, {"id": big}) == ids[2:]
    assert bundles.ids() == [big]
    assert bundles.meta(big) == {"id": big, "files": {"heap.pb.gz": 20_000}}


def test_only_bundle_ids_and_known_files_are_served(tmp_path: Path) -> None:
    """A path that is not a bundle id, or a file name outside the bundle's set, is None."""
    bundles = Bundles(tmp_path, max_bundles=3, max_bytes=10_000)
    bundle = new_id(1_700_000_000)
    bundles.save(bundle, {"report.txt": b"r"}, {"id": bundle})
    (tmp_path / "secret").write_text("no")
    assert bundles.file(bundle, "report.txt") == tmp_path / bundle / "report.txt"
    assert bundles.file(bundle, "../secret") is None
    assert bundles.file("..", "secret") is None
    assert bundles.meta("../evidence") is None


def test_what_a_crash_left_mid_write_is_removed(tmp_path: Path) -> None:
    """Half-written and half-replaced directories go; bundles and the baseline stay."""
    bundles = Bundles(tmp_path, max_bundles=3, max_bytes=10_000)
    bundle = new_id(1_700_000_000)
    bundles.save(bundle, {"report.txt": b"r"}, {"id": bundle})
    bundles.save_baseline({"heap.pb.gz": b"h"}, {"time": "t"})
    (tmp_path / f".tmp-{new_id(1_700_000_001)}").mkdir()
    (tmp_path / ".old-baseline").mkdir()
    bundles.clean()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline", bundle]


async def test_a_firing_alert_that_asks_is_captured_once_and_annotated(
    tmp_path: Path, registry: CollectorRegistry, log_stream: io.StringIO
) -> None:
    """An alert named in alertnames starts a capture; its bundle holds profiles and report."""
    async with FakePprof().serving() as pprof, _stage(_cfg(pprof.url), tmp_path, registry) as ev:
        other = _alert("CacheKeysGrowing")
        [tagged, untouched] = ev.tag([_alert("HeapFloorRising"), other])
        bundle = tagged.annotations["evidence_id"]
        assert tagged.annotations == {
            "summary": "s",
            "evidence_id": bundle,
            "evidence_url": f"/v1/evidence/{bundle}",
        }
        assert untouched is other
        meta = await _bundle(ev, bundle)
        assert meta["status"] == "captured"
        assert meta["trigger"] == "alert"
        assert meta["alerts"] == [
            {"labels": {"alertname": "HeapFloorRising"}, "fingerprint": tagged.fingerprint}
        ]
        assert sorted(meta["files"]) == [
            "goroutine.txt", "heap.pb.gz", "report.json", "report.txt"
        ]  # fmt: skip
        assert ev.bundles.read(bundle, "heap.pb.gz") == pprof.heap
        rep = json.loads(ev.bundles.read(bundle, "report.json") or b"")
        assert rep["heap"][0]["function"] == "main.leakCache"
        assert rep["goroutines"][0]["function"] == "main.leakWorkers.func1"
        assert pprof.hits == {"heap": 1, "goroutine": 1}
    assert _value(registry, "leak_sidecar_evidence_captures_total", trigger="alert") == 1
    assert _value(registry, "leak_sidecar_evidence_bundles") == 1
    captured = [e for e in _events(log_stream) if e["event"] == "evidence.captured"]
    assert [(e["evidence_id"], e["top_site"]) for e in captured] == [(bundle, "main.leakCache")]


async def test_requests_during_a_capture_join_it_and_the_cooldown_points_at_it(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """Captures never overlap: alerts arriving meanwhile join; within the cooldown, no GET."""
    async with FakePprof().serving() as pprof, _stage(_cfg(pprof.url), tmp_path, registry) as ev:
        pprof.release.clear()
        [first] = ev.tag([_alert("HeapFloorRising")])
        await _eventually(lambda: pprof.hits.get("heap") == 1)
        [second] = ev.tag([_alert("GoroutinesGrowing", evidence="true")])
        manual = asyncio.create_task(ev.capture("operator"))
        await asyncio.sleep(0.05)
        pprof.release.set()
        meta = await manual
        bundle = first.annotations["evidence_id"]
        assert second.annotations["evidence_id"] == bundle
        assert meta["id"] == bundle
        for _ in range(3):
            [again] = ev.tag(
                [_alert("HeapFloorRising"), _alert("GoroutinesGrowing", evidence="true")]
            )[:1]
            assert again.annotations["evidence_id"] == bundle
        assert pprof.hits == {"heap": 1, "goroutine": 1}
        assert ev.bundles.ids() == [bundle]
    assert _value(registry, "leak_sidecar_evidence_skipped_total", reason="cooldown") == 6


async def test_an_app_without_pprof_is_not_available_once_per_cooldown(
    tmp_path: Path, registry: CollectorRegistry, log_stream: io.StringIO
) -> None:
    """A refused pprof listener gives one counted, explained "not available" per cooldown."""
    url = f"http://127.0.0.1:{free_port()}"
    async with _stage(_cfg(url), tmp_path, registry) as ev:
        [tagged] = ev.tag([_alert("HeapFloorRising")])
        bundle = tagged.annotations["evidence_id"]
        meta = await _bundle(ev, bundle)
        for _ in range(5):
            assert ev.tag([_alert("HeapFloorRising")])[0].annotations["evidence_id"] == bundle
    assert meta["status"] == "not_available"
    assert meta["problems"] == [
        f"heap: {url}/debug/pprof/heap refused the connection: nothing serves pprof there",
        "goroutine: not fetched, the heap profile was not available",
    ]
    assert ev.bundles.ids() == [bundle]
    for part in ("heap", "goroutine"):
        assert (
            _value(
                registry, "leak_sidecar_evidence_failures_total", part=part, reason="not_available"
            )
            == 1
        )
    events = [e["event"] for e in _events(log_stream) if e["event"].startswith("evidence.")]
    assert events == ["evidence.requested", "evidence.not_available"]


async def test_a_struggling_app_is_not_captured(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """While the scrape signal says the app struggles, an alert is skipped and counted."""
    async with (
        FakePprof().serving() as pprof,
        _stage(_cfg(pprof.url), tmp_path, registry, struggling=lambda: True) as ev,
    ):
        alert = _alert("HeapFloorRising")
        assert ev.tag([alert]) == [alert]
        await asyncio.sleep(0.05)
        assert pprof.hits == {}
    assert _value(registry, "leak_sidecar_evidence_skipped_total", reason="app_struggling") == 1


async def test_the_baseline_is_taken_after_warmup_and_reports_compare_with_it(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """After warmup the baseline is kept; a later capture's growth is counted from it."""
    async with FakePprof().serving() as pprof:
        async with _stage(_cfg(pprof.url, warmup="0s"), tmp_path, registry) as ev:
            await _eventually(
                lambda: _value(registry, "leak_sidecar_evidence_captures_total", trigger="baseline")
            )
        # A restarted sidecar reads the baseline back.
        async with _stage(_cfg(pprof.url), tmp_path, CollectorRegistry()) as ev:
            meta = await ev.capture("after restart")
    rep = json.loads(ev.bundles.read(meta["id"], "report.json") or b"")
    assert rep["baseline_time"] == ev.bundles.meta("baseline")["time"]  # type: ignore[index]
    assert rep["heap_inuse_bytes_growth"] == 0
    assert rep["heap"] == []
    assert _value(registry, "leak_sidecar_evidence_captures_total", trigger="baseline") == 1


@asynccontextmanager
async def _api(ev: Evidence) -> AsyncIterator[str]:
    server = Server(
        build_app(
            registry=CollectorRegistry(),
            token=TOKEN,
            max_body_bytes=1024,
            health=lambda: (True, ""),
            ready=lambda: (True, ""),
            routes=evidence_api.routes(ev, token=TOKEN),
        ),
        shutdown_grace=1,
    )
    port = await server.start("127.0.0.1:0")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.stop()


async def test_the_api_captures_lists_and_serves_bundles_behind_the_token(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """POST captures (201); GETs list, read and serve files; all need the token."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        FakePprof().serving() as pprof,
        _stage(_cfg(pprof.url), tmp_path, registry) as ev,
        _api(ev) as base,
        aiohttp.ClientSession() as http,
    ):
        async with http.post(f"{base}/v1/evidence") as resp:
            assert resp.status == 401
        async with http.post(
            f"{base}/v1/evidence", json={"reason": "checking"}, headers=auth
        ) as resp:
            assert resp.status == 201
            bundle = (await resp.json())["data"]["id"]
        async with http.get(f"{base}/v1/evidence") as resp:
            assert resp.status == 401
        async with http.get(f"{base}/v1/evidence", headers=auth) as resp:
            listing = (await resp.json())["data"]
        assert [b["id"] for b in listing["bundles"]] == [bundle]
        assert listing["bundles"][0]["url"] == f"/v1/evidence/{bundle}"
        async with http.get(f"{base}/v1/evidence/{bundle}", headers=auth) as resp:
            one = (await resp.json())["data"]
        assert one["trigger"] == "manual"
        assert one["report"]["heap"][0]["function"] == "main.leakCache"
        async with http.get(f"{base}/v1/evidence/{bundle}/heap.pb.gz", headers=auth) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Disposition"] == (
                f'attachment; filename="{bundle}-heap.pb.gz"'
            )
            assert await resp.read() == pprof.heap
        async with http.get(f"{base}/v1/evidence/{bundle}/../meta.json", headers=auth) as resp:
            assert resp.status == 404
        async with http.get(f"{base}/v1/evidence/{bundle}/cmdline", headers=auth) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"] == (
                f"no file 'cmdline' in evidence bundle '{bundle}'"
            )
        async with http.get(f"{base}/v1/evidence/baseline", headers=auth) as resp:
            assert resp.status == 404


async def test_a_disabled_stage_refuses_captures_with_409(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """With evidence.enabled false, POST /v1/evidence says so and alerts pass untouched."""
    cfg = _cfg("http://127.0.0.1:9", enabled=False)
    async with _stage(cfg, tmp_path, registry) as ev, _api(ev) as base:
        alert = _alert("HeapFloorRising")
        assert ev.tag([alert]) == [alert]
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{base}/v1/evidence", headers={"Authorization": f"Bearer {TOKEN}"}) as resp,
        ):
            assert resp.status == 409
            assert (await resp.json())["error"] == "evidence.enabled is false: nothing is captured"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"reason": ""}', "invalid request body: reason: expected str of length >= 1"),
        (b'{"reason": 5}', "invalid request body: reason: expected str, got int"),
        (b'{"why": "x"}', "invalid request body: why: unknown key"),
        (b"{why", "invalid request body: Invalid JSON: object keys must be strings (byte 1)"),
    ],
)
async def test_a_capture_with_an_invalid_body_is_a_422_and_captures_nothing(
    tmp_path: Path, registry: CollectorRegistry, body: bytes, error: str
) -> None:
    """POST /v1/evidence checks its body strictly and names the one problem."""
    async with _stage(_cfg("http://127.0.0.1:9"), tmp_path, registry) as ev, _api(ev) as base:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{base}/v1/evidence", data=body, headers=headers) as resp,
        ):
            assert (resp.status, await resp.json()) == (422, {"status": "error", "error": error})
        assert ev.bundles.ids() == []


async def test_the_action_call_to_the_app_names_the_evidence_bundle(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """An alert tagged by the stage carries its bundle id into the app's action body."""
    async with FakePprof().serving() as pprof, _stage(_cfg(pprof.url), tmp_path, registry) as ev:
        [tagged, plain] = ev.tag([_alert("HeapFloorRising"), _alert("CacheKeysGrowing")])
        await _bundle(ev, tagged.annotations["evidence_id"])
    action = Action("a1", "cache_flush", "r", "rules", (tagged, plain), 0)
    assert [a.get("evidence") for a in action.body()["alerts"]] == [
        tagged.annotations["evidence_id"],
        None,
    ]


async def test_alerts_from_alertmanager_for_this_pod_are_captured_and_named_in_the_call(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """A webhook alert that asks starts a capture and its flush names the bundle; another
    pod's alert is left alone."""
    async with (
        FakePprof().serving() as pprof,
        _stage(_cfg(pprof.url), tmp_path / "ev", CollectorRegistry()) as ev,
        rig(tmp_path, registry, rules={"external_labels": {"pod": "p-1"}}) as r,
    ):
        r.path.receiver.tag = ev.tag
        ours = webhook_alert("HeapFloorRising", action="cache_flush", pod="p-1")
        theirs = webhook_alert("HeapFloorRising", action="cache_flush", pod="p-2")
        status, _ = await r.post("/alerts", webhook(ours, theirs))
        assert status == 200
        await r.settle()
        await _eventually(lambda: ev.bundles.ids() and not ev.pending)
        [bundle] = ev.bundles.ids()
        meta = await _bundle(ev, bundle)
        [call] = r.calls("/v1/cache/flush")
    assert [a["labels"]["pod"] for a in meta["alerts"]] == ["p-1"]
    assert [a["evidence"] for a in call.body["alerts"]] == [bundle]


def test_the_status_page_links_the_evidence_list() -> None:
    """The status page's summary links GET /v1/evidence."""
    link = parse_html(render_page(rich_view(), refresh_s=0)).by_id("summary-evidence")
    assert (link.tag, link.attrs["href"], link.text()) == ("a", "/v1/evidence", "evidence")


async def test_a_state_volume_that_cannot_be_written_costs_the_evidence_not_the_sidecar(
    tmp_path: Path, registry: CollectorRegistry, log_stream: io.StringIO
) -> None:
    """A bundle that cannot be stored is a counted, logged 503 reason; the stage runs on."""
    (tmp_path / "evidence").write_text("a file where the directory should be")
    async with FakePprof().serving() as pprof, _stage(_cfg(pprof.url), tmp_path, registry) as ev:
        with pytest.raises(EvidenceError) as info:
            await ev.capture("operator")
        assert info.value.reason == "write_failed"
        with pytest.raises(EvidenceError):
            await ev.capture("operator, again")
    assert (
        _value(
            registry, "leak_sidecar_evidence_failures_total", part="store", reason="write_failed"
        )
        == 2
    )
    events = [e["event"] for e in _events(log_stream) if e["event"] == "evidence.write_failed"]
    assert events == ["evidence.write_failed", "evidence.write_failed"]


async def test_a_config_route_with_evidence_asks_for_a_capture(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """An alert that only a route with evidence: true names is captured; others are not."""
    router = Router(
        ActionsConfig.validate(
            {"routes": [{"match": {"alertname": "FdsGrowing"}, "action": "none", "evidence": True}]}
        )
    )
    async with (
        FakePprof().serving() as pprof,
        _stage(_cfg(pprof.url), tmp_path, registry, asks=router.asks_evidence) as ev,
    ):
        fds, other = _alert("FdsGrowing"), _alert("CacheKeysGrowing")
        assert [ev.wants(fds), ev.wants(other)] == [True, False]
        [tagged] = ev.tag([fds])
        await _bundle(ev, tagged.annotations["evidence_id"])
        assert pprof.hits == {"heap": 1, "goroutine": 1}
