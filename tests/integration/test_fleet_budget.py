"""The fleet budget for real: ten sidecars next to ten Go services, one real Prometheus.

Each sidecar runs its embedded engine on its own app (the leak rule fires where the app
leaks) and asks the Prometheus that scrapes all ten before an automatic break. Short
intervals throughout: 1s scrapes and evaluations, a 2.5s settle (5s where all six must see
each other before the first decides), a 200ms re-examination.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from actions_support import AUTH, TOKEN
from conftest import free_port
from fleet_support import (
    CACHE_KEYS_BREAK,
    counted,
    eventually,
    get_json,
    query,
    rule_file,
    running_sidecar,
    scrape_samples,
)
from goservice import GoService, build_goservice, goservice
from procs import prometheus

from sidecar.core.config import Config

pytestmark = pytest.mark.integration

BREAK = "/v1/circuit/break"
PODS = 10
HOLD = 3.0  # seconds in which a second break would have shown: settle, scrapes, re-checks


@pytest.fixture(scope="session")
def gobinary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go service, built once per session."""
    return build_goservice(tmp_path_factory.mktemp("goservice"))


def _config(
    tmp_path: Path,
    i: int,
    app: GoService,
    prom_url: str,
    *,
    port: int = 0,
    engine: bool = True,
    **fleet: Any,
) -> Config:
    rules = [str(rule_file(tmp_path / "rules.yml", CACHE_KEYS_BREAK))] if engine else []
    return Config.validate(
        {
            "app": {"base_url": app.url, "state_path": "/v1/circuit"},
            "scrape": {"interval": "1s", "timeout": "500ms"},
            "rules": {"files": rules, "evaluation_interval": "1s"},
            "breaker": {"check_interval": "200ms"},
            "server": {"listen": f"127.0.0.1:{port}"},
            "state_dir": str(tmp_path / f"state-{i}"),
            "token": TOKEN,
            "fleet": {
                "prometheus_url": prom_url,
                "workload": {"app": "orders"},
                "settle": "2500ms",
                "query_timeout": "1s",
                **fleet,
            },
        }
    )


def _prometheus(urls: list[str]) -> str:
    return yaml.safe_dump(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "leak-sidecar",
                    "static_configs": [
                        {"targets": [u[7:] for u in urls], "labels": {"app": "orders"}}
                    ],
                }
            ],
        }
    )


@asynccontextmanager
async def _fleet(
    tmp_path: Path, gobinary: Path, **fleet: Any
) -> AsyncIterator[tuple[list[GoService], list[str], aiohttp.ClientSession]]:
    """Ten apps, ten sidecars asking one Prometheus (its port chosen before they start)."""
    prom_port = free_port()
    prom_url = f"http://127.0.0.1:{prom_port}"
    async with AsyncExitStack() as stack:
        apps = [await stack.enter_async_context(goservice(gobinary)) for _ in range(PODS)]
        urls = [
            await stack.enter_async_context(
                running_sidecar(_config(tmp_path, i, app, prom_url, **fleet))
            )
            for i, app in enumerate(apps)
        ]
        http = await _watching(stack, tmp_path, urls, prom_port)
        yield apps, urls, http


async def _watching(
    stack: AsyncExitStack, tmp_path: Path, urls: list[str], prom_port: int
) -> aiohttp.ClientSession:
    """Start the Prometheus that scrapes the sidecars at ``urls`` on ``stack`` and wait until it
    knows the whole workload (every app up), before anything leaks; returns an HTTP session."""
    await stack.enter_async_context(
        prometheus(tmp_path / "prometheus", _prometheus(urls), port=prom_port)
    )
    http = await stack.enter_async_context(aiohttp.ClientSession())
    await eventually(
        lambda: query(http, f"http://127.0.0.1:{prom_port}", 'count(up{app="orders"} == 1)'),
        lambda got: bool(got) and got[0]["value"][1] == str(PODS),
    )
    return http


async def _broken(apps: list[GoService]) -> list[int]:
    """The indexes of the apps that received a break call."""
    return [i for i, app in enumerate(apps) if await app.calls(BREAK)]


def _value(samples: list[Any], name: str, **labels: str) -> float:
    return sum(v for got, v in counted(samples, name) if labels.items() <= got.items())


async def test_ten_leaking_at_most_one_break_until_the_budget_frees(
    tmp_path: Path, gobinary: Path
) -> None:
    """All ten leak at once: one break (10%, at least one) and no other until the broken
    one is reset by hand; then exactly one more, at another app."""
    # Panic off (past 100% cannot be): this test is about the budget alone.
    async with _fleet(tmp_path, gobinary, panic_fraction=1.0) as (apps, urls, http):
        await asyncio.gather(*(app.leak() for app in apps))
        first = await eventually(lambda: _broken(apps), bool)
        await asyncio.sleep(HOLD)
        held = await _broken(apps)
        refused = [await scrape_samples(http, u) for u in urls]
        (one,) = first
        body = {"reason": "budget test: free the slot"}
        async with http.post(f"{urls[one]}/v1/circuit/reset", json=body, headers=AUTH) as resp:
            assert resp.status == 202, await resp.text()
        second = await eventually(lambda: _broken(apps), lambda got: len(got) >= 2)
        await asyncio.sleep(HOLD)
        final = await _broken(apps)
        states = [(await app.circuit())["state"] for app in apps]

    assert held == first
    # Every other sidecar examined its break against the budget and was refused.
    name = "leak_sidecar_fleet_budget_decisions_total"
    assert [_value(s, name, outcome="allowed") for s in refused] == [
        1.0 if i == one else 0.0 for i in range(PODS)
    ]
    assert all(_value(s, name, outcome="refused") > 0 for i, s in enumerate(refused) if i != one)
    assert len(second) == 2
    assert final == second
    (two,) = set(second) - {one}
    assert states == ["open" if i == two else "closed" for i in range(PODS)]


async def test_six_of_ten_sick_is_panic_and_a_manual_break_still_works(
    tmp_path: Path, gobinary: Path
) -> None:
    """Six of ten want a break: past the 50% panic threshold no automatic break happens,
    the metric, the log and the status page say so, and an operator's break goes through."""
    # The six alerts fire up to about 3s apart (scrape, evaluation and `for` phases) and
    # Prometheus sees a want up to 1s later: the settle time covers that spread, so that
    # the first to decide already counts six sick.
    async with _fleet(tmp_path, gobinary, settle="5s") as (apps, urls, http):
        await asyncio.gather(*(app.leak() for app in apps[:6]))

        async def panicking() -> list[float]:
            samples = [await scrape_samples(http, u) for u in urls]
            return [_value(s, "leak_sidecar_fleet_panic") for s in samples]

        panic = await eventually(panicking, lambda got: sum(got) == 6)
        await asyncio.sleep(HOLD)
        automatic = await _broken(apps)
        async with http.get(f"{urls[0]}/") as resp:
            page = await resp.text()
        body = {"reason": "operator overrides the panic"}
        async with http.post(f"{urls[0]}/v1/circuit/break", json=body, headers=AUTH) as resp:
            assert resp.status == 202, await resp.text()
        manual = await eventually(lambda: _broken(apps), bool)
        circuit = await get_json(http, f"{urls[0]}/v1/circuit")

    assert panic == [1.0] * 6 + [0.0] * 4
    assert automatic == []
    assert "PANIC, automatic breaks suspended: panic: 6 of 10 sidecars" in page
    assert manual == [0]
    assert (circuit["state"], circuit["source"]) == ("open", "operator")


async def test_prometheus_down_during_a_decision_applies_the_fallback(
    tmp_path: Path, gobinary: Path
) -> None:
    """With nothing answering at the Prometheus URL, the default fallback (allow) breaks,
    and the failed query is counted; with on_query_failure: refuse, no break."""
    down = f"http://127.0.0.1:{free_port()}"
    async with AsyncExitStack() as stack:
        apps = [await stack.enter_async_context(goservice(gobinary)) for _ in range(2)]
        urls = [
            await stack.enter_async_context(
                running_sidecar(
                    _config(tmp_path, i, app, down, on_query_failure=("allow", "refuse")[i])
                )
            )
            for i, app in enumerate(apps)
        ]
        http = await stack.enter_async_context(aiohttp.ClientSession())
        await asyncio.gather(*(app.leak() for app in apps))
        assert await eventually(lambda: _broken(apps), bool) == [0]
        await asyncio.sleep(1.0)
        broken = await _broken(apps)
        samples = [await scrape_samples(http, u) for u in urls]

    assert broken == [0]
    failures = "leak_sidecar_fleet_budget_query_failures_total"
    decisions = "leak_sidecar_fleet_budget_decisions_total"
    assert _value(samples[0], failures) == 1.0
    assert _value(samples[0], decisions, outcome="fallback_allowed") == 1.0
    assert _value(samples[1], failures) >= 1.0
    assert _value(samples[1], decisions, outcome="fallback_refused") == _value(samples[1], failures)


async def test_a_refused_sidecar_restarted_breaks_from_its_journal_once_the_budget_frees(
    tmp_path: Path, gobinary: Path
) -> None:
    """Two of ten leak: one breaks, the other is refused. Restarted with its engine off
    (nothing will notify it again), the refused one breaks from its journal once the first
    is reset by hand, and only then."""
    prom_port = free_port()
    prom_url = f"http://127.0.0.1:{prom_port}"
    ports = [free_port() for _ in range(PODS)]
    async with AsyncExitStack() as stack:
        apps = [await stack.enter_async_context(goservice(gobinary)) for _ in range(PODS)]
        # The two that leak each in a stack of its own: either may be the one restarted.
        own = [await stack.enter_async_context(AsyncExitStack()) for _ in range(2)]
        urls = [
            await (own[i] if i < 2 else stack).enter_async_context(
                running_sidecar(_config(tmp_path, i, app, prom_url, port=ports[i]))
            )
            for i, app in enumerate(apps)
        ]
        http = await _watching(stack, tmp_path, urls, prom_port)
        await asyncio.gather(apps[0].leak(), apps[1].leak())
        (one,) = await eventually(lambda: _broken(apps), bool)
        other = 1 - one
        decisions = "leak_sidecar_fleet_budget_decisions_total"
        await eventually(
            lambda: scrape_samples(http, urls[other]),
            lambda got: _value(got, decisions, outcome="refused") > 0,
        )
        await own[other].aclose()
        restarted = _config(tmp_path, other, apps[other], prom_url, port=ports[other], engine=False)
        assert await own[other].enter_async_context(running_sidecar(restarted)) == urls[other]
        await asyncio.sleep(HOLD)  # re-examined, still refused: the slot is taken
        held = await _broken(apps)
        body = {"reason": "budget test: free the slot"}
        async with http.post(f"{urls[one]}/v1/circuit/reset", json=body, headers=AUTH) as resp:
            assert resp.status == 202, await resp.text()
        second = await eventually(lambda: _broken(apps), lambda got: len(got) == 2)
        circuit = await get_json(http, f"{urls[other]}/v1/circuit")
        samples = await scrape_samples(http, urls[other])
        calls = await apps[other].calls(BREAK)

    assert held == [one]
    assert second == [0, 1]
    assert (circuit["state"], circuit["source"], circuit["reason"]) == (
        "open",
        "alert",
        "alert CacheKeysLeaking firing",
    )
    assert len(calls) == 1
    # Nothing told the restarted sidecar: no webhook, no engine; only its journal.
    assert _value(samples, "leak_sidecar_webhook_alerts_total") == 0.0
    assert _value(samples, decisions, outcome="allowed") == 1.0
