"""`leak-sidecar run` as an operator runs it: from any directory (the packaged pack, paths
relative to the config), reloaded by SIGHUP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from sidecar.demo.app import DemoApp, serve

TOKEN = "t0ken-for-the-test"


@dataclass
class _Proc:
    url: str
    proc: asyncio.subprocess.Process
    events: list[dict[str, object]] = field(default_factory=list)

    async def event(self, name: str) -> dict[str, object]:
        """The first logged event called ``name``, waited for (bounded)."""
        async with asyncio.timeout(10):
            while True:
                for e in self.events:
                    if e["event"] == name:
                        return e
                await asyncio.sleep(0.05)


async def _follow(stream: asyncio.StreamReader, events: list[dict[str, object]]) -> None:
    async for line in stream:
        events.append(json.loads(line))


@asynccontextmanager
async def _run(config: Path, cwd: Path) -> AsyncIterator[_Proc]:
    """The installed `leak-sidecar run`, started in ``cwd`` with the config from the
    environment (no flag), until it logs ``sidecar.started``; then its log is followed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAK_SIDECAR_")}
    env |= {"LEAK_SIDECAR_TOKEN": TOKEN, "LEAK_SIDECAR_CONFIG": str(config)}
    command = Path(sys.executable).parent / "leak-sidecar"
    proc = await asyncio.create_subprocess_exec(
        str(command), "run", cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(20):
            while True:
                line = await proc.stdout.readline()
                assert line, "the sidecar exited before it started"
                event = json.loads(line)
                if event["event"] == "sidecar.started":
                    break
        running = _Proc(f"http://127.0.0.1:{event['listen'].rpartition(':')[2]}", proc)
        follower = asyncio.create_task(_follow(proc.stdout, running.events))
        yield running
    finally:
        if proc.returncode is None:
            proc.terminate()
        async with asyncio.timeout(20):
            await proc.wait()
            await follower


async def _app() -> web.AppRunner:
    return await serve("127.0.0.1", 0, DemoApp())


def _config(tmp_path: Path, app: web.AppRunner, rules: str = "") -> Path:
    """A config in its own directory, naming its state_dir relative to itself."""
    confdir = tmp_path / "etc"
    confdir.mkdir()
    config = confdir / "sidecar.yaml"
    config.write_text(
        f"app:\n  base_url: http://127.0.0.1:{app.addresses[0][1]}\n"
        f"{rules}"
        "server:\n  listen: 127.0.0.1:0\n"
        "state_dir: state\n"
        "log:\n  format: json\n"
    )
    return config


async def test_run_from_another_directory_evaluates_the_packaged_pack(tmp_path: Path) -> None:
    """With no rules.files, `run` started anywhere loads the pack shipped in the package,
    is ready, and keeps its state next to the config file."""
    app = await _app()
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    try:
        config = _config(tmp_path, app)
        async with _run(config, cwd) as run, aiohttp.ClientSession() as http:
            url = run.url
            async with http.get(f"{url}/readyz") as resp:
                assert resp.status == 200
            async with http.get(f"{url}/v1/rules") as resp:
                groups = (await resp.json())["data"]["groups"]
            names = {r["name"] for g in groups for r in g["rules"]}
            assert "OOMPredicted" in names  # the pack itself, not a stray file
            assert all(g["file"].endswith("leaks.yml") for g in groups)
        assert (config.parent / "state").is_dir()
        assert not (cwd / "state").exists()
    finally:
        await app.cleanup()


async def test_zero_rules_by_accident_is_not_ready(tmp_path: Path) -> None:
    """A rules.files glob matching nothing keeps /readyz at 503 and says why."""
    app = await _app()
    try:
        config = _config(tmp_path, app, "rules:\n  files: [rules/*.yml]\n")
        async with (
            _run(config, tmp_path) as run,
            aiohttp.ClientSession() as http,
            http.get(f"{run.url}/readyz") as resp,
        ):
            assert resp.status == 503
            assert "no rules loaded" in (await resp.json())["detail"]
    finally:
        await app.cleanup()


def _rule(name: str) -> str:
    return f"groups:\n  - name: g\n    rules:\n      - alert: {name}\n        expr: vector(1)\n"


async def test_sighup_reloads_the_rules_and_a_broken_file_keeps_them(tmp_path: Path) -> None:
    """`kill -HUP` swaps in a changed rule file; a broken one is refused, logged with the
    reason, and the rules running before keep running."""
    app = await _app()
    try:
        config = _config(tmp_path, app, "rules:\n  files: [rules.yml]\n")
        rules = config.parent / "rules.yml"
        rules.write_text(_rule("Before"))
        async with _run(config, tmp_path) as run, aiohttp.ClientSession() as http:

            async def names() -> list[str]:
                async with http.get(f"{run.url}/v1/rules") as resp:
                    groups = (await resp.json())["data"]["groups"]
                return [r["name"] for g in groups for r in g["rules"]]

            assert await names() == ["Before"]
            rules.write_text(_rule("After"))
            run.proc.send_signal(signal.SIGHUP)
            assert (await run.event("config.reloaded"))["rules"] == 1
            assert await names() == ["After"]
            rules.write_text(_rule("Broken").replace("vector(1)", "sum(x"))
            run.proc.send_signal(signal.SIGHUP)
            failed = await run.event("config.reload_failed")
            assert "could not parse expression" in str(failed["problem"])
            assert await names() == ["After"]
            assert run.proc.returncode is None
    finally:
        await app.cleanup()
