"""Forwarding for real: one webhook URL for the whole workload, each break at its own app.

Three sidecars (in process, each on its own loopback address and the same port, as pods
on one network) next to three real Go services; a real Prometheus scrapes the sidecars
and evaluates the rule; two real Alertmanagers, clustered over loopback gossip, both
notify one URL: a round-robin proxy standing in for the Kubernetes Service, which hands
each notification to any sidecar. The sidecar an alert is not about forwards it to its
owner (the ``instance`` label) with the shared token.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from actions_support import AUTH, TOKEN, alert, webhook
from aiohttp import web
from conftest import free_port, serving
from fleet_support import (
    CACHE_KEYS_BREAK,
    counted,
    credentials_file,
    eventually,
    rule_file,
    running_sidecar,
    scrape_samples,
)
from goservice import GoService, build_goservice, goservice
from procs import alertmanager, prometheus

from sidecar.actions.forward import HOP_HEADER
from sidecar.core.config import Config

pytestmark = pytest.mark.integration

BREAK = "/v1/circuit/break"


@pytest.fixture(scope="session")
def gobinary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go service, built once per session."""
    return build_goservice(tmp_path_factory.mktemp("goservice"))


@dataclass
class _Service:
    """A round-robin proxy: the one webhook URL, as a Kubernetes Service in front of pods."""

    upstreams: list[str]
    landed: list[tuple[int, list[str], int]] = field(default_factory=list)
    """(sidecar index, the alerts' instance labels, the status it answered) per request."""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        index = len(self.landed) % len(self.upstreams)
        headers = {"Authorization": request.headers.get("Authorization", "")}
        headers["Content-Type"] = "application/json"
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.upstreams[index] + "/alerts", data=body, headers=headers) as resp,
        ):
            text = await resp.text()
        instances = [a["labels"].get("instance", "") for a in json.loads(body)["alerts"]]
        self.landed.append((index, instances, resp.status))
        return web.Response(status=resp.status, text=text, content_type="application/json")


def _sidecar(tmp_path: Path, i: int, port: int, app: GoService) -> Config:
    return Config.validate(
        {
            "app": {"base_url": app.url, "state_path": "/v1/circuit"},
            "scrape": {"interval": "1s", "timeout": "500ms"},
            "rules": {"files": [], "external_labels": {"pod": f"orders-{i}"}},
            "server": {"listen": f"127.0.0.{i + 1}:{port}"},
            "state_dir": str(tmp_path / f"state-{i}"),
            "token": TOKEN,
            "fleet": {
                "forward": {
                    "allow": ["127.0.0.0/8"],
                    "port": port,
                    "instance": f"127.0.0.{i + 1}:{port}",
                }
            },
        }
    )


def _prometheus(port: int, ams: list[int], rules: Path) -> str:
    return yaml.safe_dump(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ams]}]}
                ]
            },
            "scrape_configs": [
                {
                    "job_name": "leak-sidecar",
                    "static_configs": [
                        {"targets": [f"127.0.0.{i + 1}:{port}"], "labels": {"pod": f"orders-{i}"}}
                        for i in range(3)
                    ],
                }
            ],
        }
    )


def _alertmanager(url: str, credentials: Path) -> str:
    return yaml.safe_dump(
        {
            "route": {
                "receiver": "orders",
                "group_by": ["alertname", "pod"],
                "group_wait": "0s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "orders",
                    "webhook_configs": [
                        {
                            "url": url,
                            "send_resolved": True,
                            "http_config": {
                                "authorization": {
                                    "type": "Bearer",
                                    "credentials_file": str(credentials),
                                }
                            },
                        }
                    ],
                }
            ],
        }
    )


def _total(samples: list[list[Any]], name: str, **labels: str) -> float:
    return sum(v for s in samples for got, v in counted(s, name) if labels.items() <= got.items())


async def test_one_webhook_url_each_break_reaches_its_own_app_once(
    tmp_path: Path, gobinary: Path
) -> None:
    """Through two clustered Alertmanagers and one URL in front of three sidecars, each app
    gets exactly one break; every alert that landed elsewhere was forwarded; a forged
    owner outside the allowlist is refused and counted; a forwarded alert is never
    forwarded again."""
    port = free_port()
    rules = rule_file(tmp_path / "rules.yml", CACHE_KEYS_BREAK)
    credentials = credentials_file(tmp_path)
    am_ports, gossip = [free_port(), free_port()], [free_port(), free_port()]
    async with AsyncExitStack() as stack:
        apps = [await stack.enter_async_context(goservice(gobinary)) for _ in range(3)]
        for i, app in enumerate(apps):
            await stack.enter_async_context(running_sidecar(_sidecar(tmp_path, i, port, app)))
        urls = [f"http://127.0.0.{i + 1}:{port}" for i in range(3)]
        service = _Service(urls)
        receiver = web.Application()
        receiver.router.add_post("/alerts", service.handle)
        hook = await stack.enter_async_context(serving(receiver)) + "/alerts"
        for i in range(2):
            await stack.enter_async_context(
                alertmanager(
                    tmp_path / f"am-{i}",
                    _alertmanager(hook, credentials),
                    port=am_ports[i],
                    cluster=f"127.0.0.1:{gossip[i]}",
                    peers=[f"127.0.0.1:{gossip[1 - i]}"],
                )
            )
        await stack.enter_async_context(
            prometheus(tmp_path / "prometheus", _prometheus(port, am_ports, rules))
        )
        http = await stack.enter_async_context(aiohttp.ClientSession())
        for app in apps:
            await app.leak()

        async def breaks() -> list[int]:
            return [len(await app.calls(BREAK)) for app in apps]

        await eventually(breaks, all)
        # Both Alertmanagers notified (or the second held back by the first's gossip),
        # and Alertmanager re-sends a group every group_interval: let every delivery land.
        await asyncio.sleep(4)

        # A forged owner outside the allowlist, and one on another port: refused.
        forged = webhook(
            alert("Forged", action="circuit_break", instance="10.1.2.3:9120", pod="orders-9"),
            alert("Forged", action="circuit_break", instance=f"127.0.0.2:{port + 1}", pod="x"),
        )
        async with http.post(f"{urls[0]}/alerts", json=forged, headers=AUTH) as resp:
            forged_answer = (resp.status, await resp.json())
        # An alert that sidecar 0 forwards to sidecar 1, which thinks it another pod's
        # (its pod label): sidecar 1 does not send it on.
        loop = webhook(alert("Loop", action="circuit_break", instance=urls[1][7:], pod="orders-2"))
        async with http.post(f"{urls[0]}/alerts", json=loop, headers=AUTH) as resp:
            loop_answer = (resp.status, await resp.json())
        # Straight from another sidecar (the hop header): never forwarded again.
        hop = {**AUTH, HOP_HEADER: urls[2][7:]}
        again = webhook(
            alert("Again", action="circuit_break", instance=urls[1][7:], pod="orders-1")
        )
        async with http.post(f"{urls[0]}/alerts", json=again, headers=hop) as resp:
            hop_answer = (resp.status, await resp.json())
        calls = [await app.calls() for app in apps]
        samples = [await scrape_samples(http, url) for url in urls]

    # Each app: one break, applied, and nothing else.
    assert [[(c["path"], c["status"], c["applied"]) for c in got] for got in calls] == [
        [(BREAK, 200, True)]
    ] * 3
    # Every notification was accepted; each alert that landed on a sidecar it is not about
    # was forwarded, none failed.
    assert {status for _, _, status in service.landed} == {200}
    landed_elsewhere = sum(
        1 for index, instances, _ in service.landed for inst in instances if inst != urls[index][7:]
    )
    assert landed_elsewhere >= 1
    name = "leak_sidecar_forwarded_alerts_total"
    assert _total(samples, name, outcome="forwarded") == landed_elsewhere + 1  # + the loop's
    assert _total(samples, name, outcome="failed") == 0
    # Refused: the two forged owners, and the loop alert at sidecar 1, and the hop one.
    assert forged_answer == (200, {**forged_answer[1], "forwarded": 0, "actions": []})
    assert loop_answer == (200, {**loop_answer[1], "forwarded": 1, "actions": []})
    assert hop_answer == (200, {**hop_answer[1], "forwarded": 0, "actions": []})
    assert [_total([s], name, outcome="refused") for s in samples] == [3.0, 1.0, 0.0]
