"""Every curl example of the README, docs/, examples/ and the charts' NOTES.txt works as written.

A newcomer copies them first: one that gets a 415 or a 404 is the product failing its
first user. Each example runs in a shell against a live sidecar (the demo app behind
it, the Go leak app's pprof for evidence) with only what a reader would change
substituted: the port-forward addresses (``localhost:9120`` the sidecar,
``localhost:8080`` the app), the token variables the docs set, and the example bundle
id. ``--fail`` is added so that an HTTP error fails the example, as it fails the reader.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import aiohttp
import pytest
from conftest import running
from fleet_support import eventually
from leakapp_support import build_leakapp, leakapp

from sidecar.core.config import Config
from sidecar.demo.app import serve
from sidecar.supervisor import Sidecar

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parent.parent.parent
SOURCES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "examples").glob("*/README.md")),
    *sorted((ROOT / "charts").glob("*/templates/NOTES.txt")),
]
TOKEN = "doc-examples-token"
EXAMPLE_BUNDLE = re.compile(r"ev-\d{8}T\d{6}Z-[0-9a-f]{6}")


def _examples() -> list[tuple[str, str]]:
    found = []
    for path in SOURCES:
        lines = path.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines, 1):
            command = line.strip()
            if not command.startswith("curl "):
                continue
            # A command continued with a backslash goes on on the next lines.
            rest = iter(lines[n:])
            while command.endswith("\\"):
                command = command[:-1] + next(rest).strip()
            found.append((f"{path.relative_to(ROOT)}:{n}", command))
    return found


EXAMPLES = _examples()


def test_the_docs_have_curl_examples() -> None:
    """The collection below is not empty: the docs show their API with curl."""
    assert len(EXAMPLES) >= 8


@pytest.fixture(scope="module")
def leakapp_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go leak app (it serves net/http/pprof), built once."""
    return build_leakapp(tmp_path_factory)


async def test_every_curl_example_works_as_written(leakapp_binary: Path, tmp_path: Path) -> None:
    """Each example exits 0 with --fail against a live sidecar and the demo app."""
    runner = await serve("127.0.0.1", 0)
    app = f"127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with leakapp(leakapp_binary) as addr:
            cfg = Config.validate(
                {
                    "app": {"base_url": f"http://{app}"},
                    "scrape": {"interval": "1s", "timeout": "500ms"},
                    "rules": {"files": [str(ROOT / "rules" / "*.yml")]},
                    "evidence": {"pprof_url": addr["pprof"], "warmup": "0s"},
                    "server": {"listen": "127.0.0.1:0"},
                    "state_dir": str(tmp_path / "state"),
                    "token": TOKEN,
                }
            )
            async with running(Sidecar(cfg)) as sidecar, aiohttp.ClientSession() as http:
                base = f"http://127.0.0.1:{sidecar.port}"
                auth = {"Authorization": f"Bearer {TOKEN}"}
                await eventually(
                    lambda: _text(http, f"{base}/metrics"), lambda t: "cache_keys_total" in t
                )
                async with http.post(f"{base}/v1/evidence", json={}, headers=auth) as resp:
                    assert resp.status == 201, await resp.text()
                    bundle = (await resp.json())["data"]["id"]
                failed = await asyncio.to_thread(
                    _run_all, sidecar=f"127.0.0.1:{sidecar.port}", app=app, bundle=bundle,
                    cwd=tmp_path,
                )  # fmt: skip
    finally:
        await runner.cleanup()
    assert failed == []


async def _text(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as resp:
        return await resp.text()


def _run_all(*, sidecar: str, app: str, bundle: str, cwd: Path) -> list[str]:
    env = {
        **os.environ,
        "TOKEN": TOKEN,
        "LEAK_SIDECAR_TOKEN": TOKEN,
        "T": f"Authorization: Bearer {TOKEN}",
    }
    failed = []
    for where, command in EXAMPLES:
        shell = EXAMPLE_BUNDLE.sub(bundle, command)
        shell = shell.replace("localhost:9120", sidecar).replace("localhost:8080", app)
        shell = shell.replace("curl ", "curl --fail --max-time 10 ", 1)
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", shell],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            failed.append(f"{where}: {command} -> exit {result.returncode} {result.stderr[-300:]}")
    return failed
