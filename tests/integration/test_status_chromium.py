"""The status page in a real browser: headless Chromium renders it, its DOM holds the facts.

Serves a fabricated view on 127.0.0.1, asks ``chromium --dump-dom`` for the DOM after
rendering (so the browser's own parser, not ours, decides what is markup) and takes a
screenshot, checked to be a PNG of the requested size.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry
from status_support import (
    HEAP,
    HOSTILE,
    ChartSource,
    parse_html,
    rich_view,
    status_app,
    young_pod_store,
)

pytestmark = pytest.mark.integration

_TIMEOUT_S = 60
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def url(registry: CollectorRegistry) -> AsyncIterator[str]:
    """The status page served by the real app on 127.0.0.1, on a port the OS chose."""
    server = TestServer(status_app(registry, rich_view(), refresh_s=0), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/"))
    finally:
        await server.close()


@pytest.fixture
async def young_pod_url(registry: CollectorRegistry) -> AsyncIterator[str]:
    """The status page of a ten-minute-old pod, charts built per request from its store."""
    source = ChartSource(rich_view(), young_pod_store(), [HEAP])
    app = status_app(registry, rich_view(), refresh_s=0, source=source)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/"))
    finally:
        await server.close()


async def _chromium(tmp: Path, *args: str) -> bytes:
    """Run Chromium to completion within the timeout; its stdout."""
    binary = shutil.which("chromium")
    if binary is None:
        raise AssertionError("chromium is not installed (Debian: chromium)")
    proc = await asyncio.create_subprocess_exec(
        binary,
        *_FLAGS,
        f"--user-data-dir={tmp / 'profile'}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # Its own process group, so that a hung run is ended with every helper it forked.
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(_TIMEOUT_S):
            out, err = await proc.communicate()
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise AssertionError(f"chromium did not finish within {_TIMEOUT_S}s") from None
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out


async def test_rendered_dom_holds_the_facts_and_no_script(url: str, tmp_path: Path) -> None:
    """After Chromium renders the page, its DOM shows each section's facts and charts."""
    dom = (await _chromium(tmp_path, "--dump-dom", url)).decode()
    doc = parse_html(dom)
    assert list(doc.iter("script")) == []
    assert [doc.by_id(i).text() for i in ("target-health", "breaker-state", "breaker-reset")] == [
        "up",
        "open",
        "in 3m",
    ]
    assert [row[:4] for row in doc.by_id("rules-table").rows()] == [
        ["leaks", "CacheKeysGrowing rate(cache_keys_total[10m]) > 500", "firing", "ok"],
        ["leaks", "PoolSaturated avg_over_time(conn_pool_active[5m]) > 95", "inactive", "err"],
        ["records", "job:heap:avg avg_over_time(go_memstats_heap_inuse_bytes[5m])", "recording",
         "ok"],
    ]  # fmt: skip
    assert doc.by_id("alerts-table").rows()[0][:2] == ["CacheKeysGrowing", "firing"]
    assert [r[4] for r in doc.by_id("actions-table").rows()] == ["success", "gave_up"]
    polylines = [
        [len(str(p.attrs["points"]).split()) for p in doc.by_id(f"chart-{i}").iter("polyline")]
        for i in range(3)
    ]
    assert [len(p) for p in polylines] == [1, 2, 1]
    caption = next(doc.by_id("chart-0").iter("figcaption")).text()
    assert caption == f'cache_keys_total{{cache="{HOSTILE}"}} last 42, 20 samples'


async def test_screenshot_is_a_png_of_the_window_size(url: str, tmp_path: Path) -> None:
    """Chromium paints the page into a non-empty PNG of the requested 1280x2000 window."""
    shot = tmp_path / "page.png"
    await _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", url)
    data = shot.read_bytes()
    assert data[:8] == _PNG_SIGNATURE
    # The first chunk is IHDR: length 13, type, then width and height as big-endian u32.
    length, kind, width, height = struct.unpack(">I4sII", data[8:24])
    assert (length, kind, width, height) == (13, b"IHDR", 1280, 2000)
    # A blank page compresses to a few kilobytes; tables, text and charts do not.
    assert len(data) > 50_000


async def test_a_young_pods_heap_fills_the_chart_against_threshold_and_limit(
    young_pod_url: str, tmp_path: Path
) -> None:
    """Rendered by Chromium: the heap of a ten-minute-old pod runs from the chart's left
    edge to its right, under OOMImminent's 80% line and the memory limit; with
    ?window=15m it starts a third of the way in, and the span links say which is shown."""
    spans = {}
    for query in ("", "?window=15m"):
        dom = (await _chromium(tmp_path, "--dump-dom", young_pod_url + query)).decode()
        chart = parse_html(dom).by_id("chart-0")
        points = str(next(chart.iter("polyline")).attrs["points"]).split()
        spans[query] = (points[0], points[-1])
        lines = [(n.attrs["class"], n.attrs["y1"], n.attrs["y2"]) for n in chart.iter("line")]
        assert lines == [("ref threshold", "25.0", "25.0"), ("ref limit", "6.0", "6.0")]
        texts = [n.text() for n in chart.iter("text")]
        assert texts[-2:] == ["OOMImminent > 80% of the limit (2.4G)", "memory limit 3G"]
        current = [n.text() for n in parse_html(dom).by_id("charts-window").iter("strong")]
        assert current == (["data there is"] if query == "" else ["15m"])
    assert spans == {"": ("50.0,98.0", "414.0,34.6"), "?window=15m": ("171.3,98.0", "414.0,34.6")}
