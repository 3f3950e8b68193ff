"""The app's circuit converges on the sidecar's decision: `leak-sidecar run` against the
real Go service (tests/fixtures/goservice), through dropped calls, app restarts and
SIGKILLs of the sidecar itself."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from actions_support import AUTH, TOKEN, alert, webhook
from conftest import free_port
from goservice import GoService, build_goservice, goservice
from procs import Command, sidecar_command

pytestmark = pytest.mark.integration

BREAK = "/v1/circuit/break"
RESET = "/v1/circuit/reset"
SCRAPE_INTERVAL = 1.0
MAX_BACKOFF = 1.0
ROUNDS = int(os.environ.get("LEAK_SIDECAR_SIGKILL_ROUNDS", "50"))
"""SIGKILL rounds, as the issue asks: about 1.4 s each (a sidecar start is most of it)."""


@pytest.fixture(scope="session")
def gobinary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go service, built once per session."""
    return build_goservice(tmp_path_factory.mktemp("goservice"))


def _config(tmp_path: Path, base_url: str, **actions: Any) -> Path:
    path = tmp_path / "sidecar.yaml"
    path.write_text(
        json.dumps(
            {
                "app": {"base_url": base_url, "state_path": "/v1/circuit"},
                "rules": {"files": []},
                "server": {"listen": "127.0.0.1:0"},
                "state_dir": str(tmp_path / "state"),
                "scrape": {"interval": "1s", "timeout": "500ms"},
                "actions": {
                    "timeout": "500ms",
                    "reconcile": {"initial_backoff": "100ms", "max_backoff": "1s"},
                    **actions,
                },
                "log": {"format": "json"},
            }
        )
    )
    return path


async def _until(check: Callable[[], Awaitable[bool]], within: float) -> float:
    """Poll ``check`` until true (bounded); returns how long it took."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        while True:
            if await check():
                return time.monotonic() - started
            await asyncio.sleep(0.05)


async def _circuit(http: aiohttp.ClientSession, sc: Command) -> dict[str, Any]:
    async with http.get(f"{sc.url}/v1/circuit") as resp:
        out: dict[str, Any] = await resp.json()
        return out


async def _post(http: aiohttp.ClientSession, url: str, body: Any) -> Any:
    async with http.post(url, json=body, headers=AUTH) as resp:
        assert resp.status in (200, 202), await resp.text()
        return await resp.json()


async def _drive(
    http: aiohttp.ClientSession, url: str, sequence: list[str], rng: random.Random
) -> None:
    """Ask the sidecar for each break or reset of ``sequence``, a few ms apart."""
    for name in sequence:
        try:
            await _post(http, f"{url}/v1/circuit/{name}", {"reason": name})
        except aiohttp.ClientError:
            return  # killed under the request
        await asyncio.sleep(rng.uniform(0, 0.03))


async def _open(app: GoService) -> bool:
    return bool((await app.circuit())["state"] == "open")


async def test_dropped_breaks_for_5s_then_exactly_one_effective_break(
    tmp_path: Path, gobinary: Path
) -> None:
    """The app drops every break for 5 s: after it recovers, one break takes effect, no
    operator acts, and GET /v1/circuit shows desired = observed."""
    async with (
        goservice(gobinary) as app,
        sidecar_command(_config(tmp_path, app.url), tmp_path / "sidecar.log", TOKEN) as sc,
        aiohttp.ClientSession() as http,
    ):
        await app.fault(BREAK, "drop", 5)
        dropped_until = time.time() + 5
        answer = await _post(
            http, f"{sc.url}/alerts", webhook(alert("PoolSaturated", action="circuit_break"))
        )
        [action] = answer["actions"]
        await _until(lambda: _open(app), within=5 + MAX_BACKOFF + 5)
        await asyncio.sleep(2 * MAX_BACKOFF)  # nothing more is sent once confirmed
        calls = await app.calls(BREAK)
        effective = [c for c in calls if c["applied"]]
        assert len(effective) == 1
        assert effective[0]["at"] >= dropped_until - 0.05
        assert [c["fault"] for c in calls[:-1]] == ["drop"] * (len(calls) - 1)
        assert len(calls) >= 3  # re-sent while the app dropped them
        assert {(c["key"], c["generation"]) for c in calls} == {(action["id"], 1)}
        circuit = await _circuit(http, sc)
        assert circuit["desired"] == circuit["observed"]["state"] == "open"
        assert circuit["generation"] == circuit["observed"]["generation"] == 1
        assert circuit["in_sync"] is True
        assert await app.circuit() == {"state": "open", "generation": 1}


async def test_redelivery_after_a_failed_break_leaves_the_app_protected(
    tmp_path: Path, gobinary: Path
) -> None:
    """Finding 1: a break the app refused, then the same notification again (a duplicate,
    acting on nothing): the break still reaches the app once it takes calls."""
    async with (
        goservice(gobinary) as app,
        sidecar_command(_config(tmp_path, app.url), tmp_path / "sidecar.log", TOKEN) as sc,
        aiohttp.ClientSession() as http,
    ):
        await app.fault(BREAK, "503", 2)
        payload = webhook(alert("PoolSaturated", action="circuit_break"))
        await _post(http, f"{sc.url}/alerts", payload)

        async def failed_once() -> bool:
            return any(c["status"] == 503 for c in await app.calls(BREAK))

        await _until(failed_once, within=5)
        again = await _post(http, f"{sc.url}/alerts", payload)
        assert (again["duplicates"], again["actions"]) == (1, [])
        await _until(lambda: _open(app), within=2 + MAX_BACKOFF + 5)
        circuit = await _circuit(http, sc)
        assert (circuit["desired"], circuit["observed"]["state"]) == ("open", "open")
        assert len([c for c in await app.calls(BREAK) if c["applied"]]) == 1


async def test_restarted_app_gets_the_break_again_within_a_scrape_and_backoff(
    tmp_path: Path, gobinary: Path
) -> None:
    """Finding 2: killed and restarted while an alert holds the breaker, the new process
    (closed) receives a break within one scrape interval plus the retry backoff."""
    port = free_port()
    log = tmp_path / "sidecar.log"
    async with aiohttp.ClientSession() as http, goservice(gobinary, port=port) as first:
        config = _config(tmp_path, first.url)
        async with sidecar_command(config, log, TOKEN) as sc:
            await _post(
                http,
                f"{sc.url}/alerts",
                webhook(alert("PoolSaturated", action="circuit_break")),
            )
            await _until(lambda: _open(first), within=5)
            await asyncio.sleep(2.5 * SCRAPE_INTERVAL)  # a few scrapes of this process
            await first.kill()
            async with goservice(gobinary, port=port) as second:
                restarted = time.monotonic()
                assert (await second.circuit())["state"] == "closed"
                took = await _until(lambda: _open(second), within=10)
                assert took <= SCRAPE_INTERVAL + MAX_BACKOFF + 1.0, took
                [call] = await second.calls(BREAK)
                assert call["applied"]
                assert call["generation"] == 1
                assert time.monotonic() - restarted < 10
                circuit = await _circuit(http, sc)
                assert circuit["in_sync"]
                assert circuit["observed"]["state"] == "open"
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert "scrape.target_restarted" in events


@pytest.mark.timeout(300)
async def test_sigkill_at_random_points_never_leaves_the_app_apart_from_the_sidecar(
    tmp_path: Path, gobinary: Path
) -> None:
    """Finding 3: SIGKILL during a random break/reset sequence, ROUNDS times: after each
    restart the app's state and generation always end equal to the sidecar's desired."""
    rng = random.Random(int(os.environ.get("LEAK_SIDECAR_SIGKILL_SEED", "9")))
    log = tmp_path / "sidecar.log"
    async with goservice(gobinary, jitter="30ms") as app, aiohttp.ClientSession() as http:
        config = _config(tmp_path, app.url)
        for round_ in range(ROUNDS + 1):
            async with sidecar_command(config, log, TOKEN) as sc:

                async def in_sync() -> bool:
                    return bool((await _circuit(http, sc))["in_sync"])

                try:
                    await _until(in_sync, within=30)
                except TimeoutError:
                    calls = (await app.calls())[-5:]
                    raise AssertionError(
                        f"round {round_}: not in sync: {await _circuit(http, sc)}; "
                        f"app {await app.circuit()}, its last calls {calls}"
                    ) from None
                desired = await _circuit(http, sc)
                mine = await app.circuit()
                assert (mine["state"], mine["generation"]) == (
                    desired["desired"],
                    desired["generation"],
                ), f"round {round_}: sidecar {desired}, app {mine}"
                if round_ == ROUNDS:
                    break
                sequence = [rng.choice(["break", "reset"]) for _ in range(rng.randint(1, 4))]
                kill_after = rng.uniform(0, 0.15)

                driving = asyncio.create_task(_drive(http, sc.url, sequence, rng))
                await asyncio.sleep(kill_after)
                sc.proc.send_signal(signal.SIGKILL)
                await sc.proc.wait()
                await asyncio.gather(driving, return_exceptions=True)
        applied = [c for c in await app.calls() if c["applied"]]
    generations = [c["generation"] for c in applied]
    assert generations == sorted(generations)  # no older command ever took effect late
    # The kills did land mid-sequence: restarts found unconfirmed calls to resume.
    # (Counted in the text: a SIGKILL may leave a torn log line.)
    resumed = re.findall(r'"event":\s*"action\.resumed"', log.read_text())
    assert len(resumed) >= min(ROUNDS, 5) // 5


async def test_a_sidecar_that_lost_its_state_dir_catches_up_with_the_apps_generation(
    tmp_path: Path, gobinary: Path
) -> None:
    """The app keeps running at generation 3 while the sidecar restarts on an empty state
    directory: its reset (generation 1) is answered 409 with the app's generation, so it
    takes generation 4, journaled, and the app closes; a restart keeps generation 4."""
    log = tmp_path / "sidecar.log"
    async with goservice(gobinary) as app, aiohttp.ClientSession() as http:
        (tmp_path / "old").mkdir()
        async with sidecar_command(_config(tmp_path / "old", app.url), log, TOKEN) as sc:
            for name in ("break", "reset", "break"):
                await _post(http, f"{sc.url}/v1/circuit/{name}", {"reason": name})
                await _until(lambda: _in_sync(http, sc), within=5)
        assert await app.circuit() == {"state": "open", "generation": 3}

        (tmp_path / "new").mkdir()
        config = _config(tmp_path / "new", app.url)
        async with sidecar_command(config, log, TOKEN) as sc:
            answer = await _post(http, f"{sc.url}/v1/circuit/reset", {"reason": "lost state"})
            assert answer["circuit"]["generation"] == 1
            await _until(lambda: _in_sync(http, sc), within=5 + MAX_BACKOFF)
            circuit = await _circuit(http, sc)
            assert (circuit["desired"], circuit["generation"]) == ("closed", 4)
            assert circuit["observed"]["generation"] == 4
        assert await app.circuit() == {"state": "closed", "generation": 4}
        key = answer["action"]["id"]
        calls = [(c["key"], c["generation"], c["status"]) for c in await app.calls(RESET)]
        assert calls[-2:] == [(key, 1, 409), (key, 4, 200)]

        async with sidecar_command(config, log, TOKEN) as sc:
            circuit = await _circuit(http, sc)
            assert (circuit["desired"], circuit["generation"]) == ("closed", 4)
            assert circuit["in_sync"]
    events = [json.loads(line) for line in log.read_text().splitlines()]
    [behind] = [e for e in events if e["event"] == "reconcile.generation_behind"]
    assert (behind["app_generation"], behind["was"], behind["generation"]) == (3, 1, 4)


async def _in_sync(http: aiohttp.ClientSession, sc: Command) -> bool:
    return bool((await _circuit(http, sc))["in_sync"])
