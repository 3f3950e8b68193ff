"""Fleet mode for real: the same rule files in Prometheus, delivery through Alertmanager.

Everything runs on loopback and on real time, with one-second intervals: the demo app
(leaking on cue), a sidecar in process, a real ``prometheus`` and a real
``prometheus-alertmanager`` (see ``procs``). Alertmanager's webhook authenticates to the
sidecar with ``http_config.authorization.credentials_file``, as a deployment would.

The test rules read ``max_over_time(cache_keys_total[5m])``: the flush empties the cache,
and the alert must stay firing while the test reads Alertmanager's view of it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from actions_support import demo_app, until
from conftest import free_port
from fleet_support import (
    PACK,
    WAIT,
    am_alert,
    am_alerts,
    am_config,
    counted,
    credentials_file,
    eventually,
    get_json,
    journaled_actions,
    pods,
    prometheus_config,
    queried_names,
    query,
    rule_file,
    running_sidecar,
    scrape_samples,
    sidecar_config,
)
from procs import alertmanager, prometheus
from prometheus_client.samples import Sample

from sidecar.core.model import fingerprint
from sidecar.demo.app import LeakSettings

pytestmark = pytest.mark.integration

PACK_RULES = [
    "CacheKeysGrowing",
    "ConnPoolSaturated",
    "HeapFloorRising",
    "OOMPredicted",
    "OOMImminent",
    "GoroutinesGrowing",
]
GROUP = f"{PACK};leak-sidecar"  # Prometheus's rule_group label: file;name
THRESHOLD = 5000  # keys: the demo's healthy caches hold 1500, the leak adds 2000 a second
LEAK = LeakSettings(on=True, keys_per_second=2000, pool_per_second=0)
SETTLE = 4.0  # seconds: several evaluations and group intervals, for a second call to show

FLUSH_RULE = f"""
      - alert: CacheKeysHigh
        expr: max_over_time(cache_keys_total[5m]) > {THRESHOLD}
        for: 2s
        labels:
          severity: warning
          action: cache_flush
"""
# Same condition, another action: a second flush would be hidden by the flush cooldown,
# a break would not, so "no call" below means the silence held it back.
BREAK_RULE = f"""
      - alert: CacheKeysCritical
        expr: max_over_time(cache_keys_total[5m]) > {THRESHOLD}
        for: 2s
        labels:
          severity: critical
          action: circuit_break
"""


def _group_metric(samples: list[Sample], name: str) -> float | None:
    """The pack group's value of one of Prometheus's own rule-group metrics."""
    values = [s.value for s in samples if s.name == name and s.labels["rule_group"] == GROUP]
    return values[0] if values else None


async def _pack_group(
    http: aiohttp.ClientSession, prom_url: str
) -> tuple[dict[str, Any], list[Sample]]:
    """The pack's group in /api/v1/rules once it was evaluated 3 times, and Prometheus's
    own metrics then (it does not scrape itself here)."""
    own = await eventually(
        lambda: scrape_samples(http, prom_url),
        lambda got: (_group_metric(got, "prometheus_rule_group_iterations_total") or 0) >= 3,
    )
    groups = (await get_json(http, f"{prom_url}/api/v1/rules"))["data"]["groups"]
    return next(g for g in groups if g["file"] == str(PACK)), own


async def test_prometheus_evaluates_the_rules_and_alertmanager_delivers_one_flush(
    tmp_path: Path,
) -> None:
    """Prometheus (examples/fleet's scrape config) scraping the sidecar fires the rule,
    Alertmanager posts it to /alerts with the token from its credentials_file, and the app
    gets exactly one flush whose fingerprint is Alertmanager's, none for another pod's
    alert; the shipped pack loads and evaluates without error on the exported names."""
    tiny = rule_file(tmp_path / "fleet.yml", FLUSH_RULE)
    async with demo_app() as (demo, app_url):
        # The engine is off: Prometheus evaluates. The external labels are the sidecar's
        # identity. A known memory limit exports leak_sidecar_app_memory_limit_bytes,
        # which OOMPredicted reads.
        cfg = sidecar_config(
            tmp_path,
            app_url,
            rules={"files": [], "external_labels": {"pod": "demo-0", "namespace": "shop"}},
            app={"memory_limit_bytes": 512 * 1024**2},
        )
        async with (
            running_sidecar(cfg) as sidecar_url,
            alertmanager(tmp_path / "am", am_config(sidecar_url, credentials_file(tmp_path))) as am,
        ):
            sidecar_port = int(sidecar_url.rpartition(":")[2])
            prom_config = prometheus_config(sidecar_port, am.port, [tiny, PACK])
            async with (
                prometheus(tmp_path / "prometheus", prom_config) as prom,
                aiohttp.ClientSession() as http,
            ):
                demo.sim.set_leak(LEAK)
                await until(lambda: bool(demo.calls), within=WAIT)
                alerts = await eventually(
                    lambda: am_alerts(http, am.url),
                    lambda got: pods(got, "CacheKeysHigh") == {"demo-0", "demo-1"},
                )
                await asyncio.sleep(SETTLE)
                pack, own = await _pack_group(http, prom.url)
                targets = (await get_json(http, f"{prom.url}/api/v1/targets"))["data"]
                stored = await query(http, prom.url, 'group by (__name__) ({job="leak-sidecar"})')
                samples = await scrape_samples(http, sidecar_url)

    assert [c.path for c in demo.calls] == ["/v1/cache/flush"]
    call = demo.calls[0]
    target = {
        "instance": f"127.0.0.1:{sidecar_port}",
        "job": "leak-sidecar",
        "namespace": "shop",
        "pod": "demo-0",
        "app_kubernetes_io_name": "orders",
    }
    # The example's relabeling: the pod's identity as target labels, other containers out.
    active = sorted(targets["activeTargets"], key=lambda t: str(t["labels"]["pod"]))
    assert [t["labels"] for t in active] == [target, {**target, "pod": "demo-1"}]
    assert [t["health"] for t in active] == ["up", "up"]
    assert len(targets["droppedTargets"]) == 1
    labels = {"alertname": "CacheKeysHigh", "action": "cache_flush", "severity": "warning"}
    labels |= target
    assert pods(alerts, "CacheKeysHigh") == {"demo-0", "demo-1"}
    delivered = am_alert(alerts, pod="demo-0")
    assert delivered["labels"] == labels
    assert delivered["fingerprint"] == fingerprint(labels)
    assert (call.method, call.status) == ("POST", 200)
    assert call.idempotency_key == call.body["id"]
    assert (call.body["action"], call.body["source"]) == ("cache_flush", "alertmanager")
    assert [(a["labels"], a["fingerprint"]) for a in call.body["alerts"]] == [
        (labels, delivered["fingerprint"])
    ]
    journaled = journaled_actions(tmp_path / "state")
    assert [
        (a["id"], a["kind"], a["source"], [x["fingerprint"] for x in a["alerts"]])
        for a in journaled
    ] == [(call.idempotency_key, "cache_flush", "alertmanager", [delivered["fingerprint"]])]
    # The other pod's alert came too, in the same group (in one notification or two, as
    # the two became firing), and was not acted on.
    codes = {c["code"] for c, _ in counted(samples, "leak_sidecar_webhook_requests_total")}
    routed = {c["action"] for c, _ in counted(samples, "leak_sidecar_webhook_alerts_total")}
    assert (codes, routed) == ({"200"}, {"cache_flush", "foreign"})

    assert [r["name"] for r in pack["rules"]] == PACK_RULES
    assert [(r["health"], r.get("lastError", "")) for r in pack["rules"]] == [("ok", "")] * 6
    assert _group_metric(own, "prometheus_rule_evaluation_failures_total") == 0.0
    assert _group_metric(own, "prometheus_rule_group_rules") == 6.0
    # Same file, same meaning: every name the rules query is a name the sidecar exports
    # and Prometheus stored from it. The pack reads goroutines or go_goroutines
    # (client_golang's name); an app with expvar alone, as the demo, has the first.
    names = {s["metric"]["__name__"] for s in stored}
    queried = queried_names(PACK) | queried_names(tiny)
    exported = {s.name for s in samples}
    assert queried - exported == {"go_goroutines"}
    assert queried - names == {"go_goroutines"}


async def test_embedded_engine_sends_to_alertmanager_and_its_silences_apply(
    tmp_path: Path,
) -> None:
    """The embedded engine's alerts go through Alertmanager with the external labels and come
    back to /alerts: one flush; the silenced alert reaches Alertmanager and no call is made."""
    tiny = rule_file(tmp_path / "embedded.yml", FLUSH_RULE, BREAK_RULE)
    credentials = credentials_file(tmp_path)
    am_port = free_port()  # the sidecar must know Alertmanager's URL before it starts
    async with demo_app() as (demo, app_url):
        cfg = sidecar_config(
            tmp_path,
            app_url,
            rules={
                "files": [str(tiny)],
                "evaluation_interval": "1s",
                "external_labels": {"pod": "demo-0"},
                "alertmanager_url": f"http://127.0.0.1:{am_port}",
            },
        )
        async with running_sidecar(cfg) as sidecar_url:
            hook = am_config(sidecar_url, credentials)
            async with (
                alertmanager(tmp_path / "am", hook, port=am_port) as am,
                aiohttp.ClientSession() as http,
            ):
                now = dt.datetime.now(dt.UTC)
                silence = {
                    "matchers": [
                        {"name": "alertname", "value": "CacheKeysCritical", "isRegex": False}
                    ],
                    "startsAt": now.isoformat(),
                    "endsAt": (now + dt.timedelta(hours=1)).isoformat(),
                    "createdBy": "test_fleet",
                    "comment": "a break we do not want",
                }
                async with http.post(f"{am.url}/api/v2/silences", json=silence) as resp:
                    assert resp.status == 200, await resp.text()
                    silence_id = (await resp.json())["silenceID"]

                demo.sim.set_leak(LEAK)
                await until(lambda: bool(demo.calls), within=WAIT)
                alerts = await eventually(
                    lambda: am_alerts(http, am.url),
                    lambda got: bool(pods(got, "CacheKeysHigh") and pods(got, "CacheKeysCritical")),
                )
                await asyncio.sleep(SETTLE)
                firing = await get_json(http, f"{sidecar_url}/v1/alerts")
                samples = await scrape_samples(http, sidecar_url)

    assert [c.path for c in demo.calls] == ["/v1/cache/flush"]
    call = demo.calls[0]
    labels = {
        "alertname": "CacheKeysHigh",
        "action": "cache_flush",
        "severity": "warning",
        "pod": "demo-0",
    }
    flushed = am_alert(alerts, alertname="CacheKeysHigh")
    assert flushed["labels"] == labels
    assert flushed["fingerprint"] == fingerprint(labels)
    assert flushed["status"]["state"] == "active"
    assert [(a["labels"], a["fingerprint"]) for a in call.body["alerts"]] == [
        (labels, flushed["fingerprint"])
    ]
    assert (call.body["source"], call.idempotency_key) == ("alertmanager", call.body["id"])
    silenced = am_alert(alerts, alertname="CacheKeysCritical")
    assert silenced["labels"] == {
        "alertname": "CacheKeysCritical",
        "action": "circuit_break",
        "severity": "critical",
        "pod": "demo-0",
    }
    assert (silenced["status"]["state"], silenced["status"]["silencedBy"]) == (
        "suppressed",
        [silence_id],
    )
    # The engine fired both; only Alertmanager held the break back.
    assert sorted((a["labels"]["alertname"], a["state"]) for a in firing["data"]["alerts"]) == [
        ("CacheKeysCritical", "firing"),
        ("CacheKeysHigh", "firing"),
    ]
    assert counted(samples, "leak_sidecar_notifications_sent_total") == [
        ({"destination": "alertmanager"}, 2.0)
    ]
    # One webhook request, accepted (the token from the credentials file), one alert in
    # it: the flush; the silenced alert never reached the receiver.
    assert counted(samples, "leak_sidecar_webhook_requests_total") == [({"code": "200"}, 1.0)]
    assert counted(samples, "leak_sidecar_webhook_alerts_total") == [
        ({"status": "firing", "action": "cache_flush"}, 1.0)
    ]
