"""Reload applies the config, not only the rules: each key class, live, with its effect."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import datetime
from pathlib import Path

import aiohttp
import msgspec
import pytest
from actions_support import alert, until, webhook
from conftest import running
from prometheus_client import CollectorRegistry

from sidecar.core.config_load import load
from sidecar.demo.app import DemoApp, serve
from sidecar.supervisor import Sidecar
from sidecar.supervisor.reload import changed_keys

TOKEN = "s3cret"
ENV = {"LEAK_SIDECAR_TOKEN": TOKEN}
AUTH = {"Authorization": f"Bearer {TOKEN}"}

BEFORE = """
app:
  base_url: {app}
  http_config:
    authorization: {{credentials: not-the-apps-token}}
scrape:
  interval: 1s
  timeout: 500ms
rules:
  files: []
  external_labels: {{pod: a}}
actions:
  cooldowns: {{cache_flush: 0s}}
breaker:
  min_open: 1m
server:
  listen: 127.0.0.1:0
state_dir: st
"""

AFTER = """
app:
  base_url: {app}
  http_config:
    authorization: {{credentials: app-token}}
scrape:
  interval: 2s
  timeout: 1s
  maps: [{{path: caches, labels: [cache]}}]
  metric_relabel_configs:
    - source_labels: [__name__]
      regex: cache_keys_total
      target_label: __name__
      replacement: app_cache_keys
rules:
  files: []
  external_labels: {{pod: b}}
actions:
  cooldowns: {{cache_flush: 1h}}
  routes:
    - match_re: {{alertname: "Leak.*"}}
      action: cache_flush
      cooldown: 0s
breaker:
  min_open: 2m
server:
  listen: 127.0.0.1:0
state_dir: st
"""


async def _post_alert(http: aiohttp.ClientSession, url: str, name: str, **labels: str) -> None:
    body = webhook(alert(name, **labels))
    async with http.post(f"{url}/alerts", json=body, headers=AUTH) as resp:
        assert resp.status == 200, await resp.text()


async def _metrics_until(http: aiohttp.ClientSession, url: str, *lines: str) -> list[str]:
    """The /metrics lines once every one of ``lines`` is among them (a scrape or two)."""
    async with asyncio.timeout(10):
        while True:
            async with http.get(f"{url}/metrics") as resp:
                text = (await resp.text()).splitlines()
            if all(line in text for line in lines):
                return text
            await asyncio.sleep(0.1)


async def _calls_until(app: DemoApp, n: int) -> list[tuple[str, bool]]:
    await until(lambda: len(app.calls) >= n, within=10)
    return [(c.path, c.authorized) for c in app.calls]


async def test_a_reload_applies_scrape_relabel_routes_cooldowns_labels_and_credentials(
    tmp_path: Path, registry: CollectorRegistry, log_stream: io.StringIO
) -> None:
    """After one reload the next scrape uses the new interval, maps and relabelling, the
    next alert the new routes, cooldowns and external labels, the next call to the app the
    new credentials; the breaker's open circuit and the journal survive it."""
    app = DemoApp(token="app-token")
    runner = await serve("127.0.0.1", 0, app)
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    cfg = tmp_path / "sidecar.yaml"
    cfg.write_text(BEFORE.format(app=base))
    try:
        sidecar = Sidecar(load(cfg, ENV), registry=registry, config_path=cfg, env=ENV)
        async with running(sidecar), aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{sidecar.port}"
            await _metrics_until(
                http,
                url,
                "cache_keys_total 1500.0",
                "caches_orders 1200.0",
                "leak_sidecar_scrape_interval_seconds 1.0",
            )
            # Before: the alert's own label acts, cooldown 0 lets a second through, an alert
            # about pod b is another pod's; the app refuses the wrong credentials.
            await _post_alert(http, url, "Leak1", pod="a", action="cache_flush")
            await _calls_until(app, 1)
            await _post_alert(http, url, "Leak2", pod="a", action="cache_flush")
            await _post_alert(http, url, "Leak3", pod="b", action="cache_flush")
            assert await _calls_until(app, 2) == [
                ("/v1/cache/flush", False),
                ("/v1/cache/flush", False),
            ]
            async with http.post(f"{url}/v1/circuit/break", json={"hold": True},
                                 headers=AUTH) as resp:  # fmt: skip
                assert resp.status == 202
            await _calls_until(app, 3)

            cfg.write_text(AFTER.format(app=base))
            async with http.post(f"{url}/-/reload", headers=AUTH) as resp:
                assert (resp.status, await resp.json()) == (200, {"status": "success"})

            text = await _metrics_until(
                http,
                url,
                "app_cache_keys 1500.0",
                'caches{cache="orders"} 1200.0',
                "leak_sidecar_scrape_interval_seconds 2.0",
            )
            assert "cache_keys_total 1500.0" not in text
            # After: the route acts without an action label (on its own cooldown); the flush
            # asked by the label waits out the new 1h cooldown since the last one; pod b is
            # now this pod and pod a another; the credentials are right.
            await _post_alert(http, url, "Leak4", pod="b")
            await until(
                lambda: any(c.path == "/v1/cache/flush" and c.authorized for c in app.calls),
                within=10,
            )
            await _post_alert(http, url, "Other", pod="b", action="cache_flush")
            await _post_alert(http, url, "Leak5", pod="a")
            await asyncio.sleep(0.3)
            flushes = [c.authorized for c in app.calls if c.path == "/v1/cache/flush"]
            assert flushes == [False, False, True]
            # The break the app refused is re-sent until it agrees: with the new credentials.
            breaks = [c.authorized for c in app.calls if c.path == "/v1/circuit/break"]
            assert (breaks[0], breaks[-1]) == (False, True)
            async with http.get(f"{url}/v1/circuit") as resp:
                circuit = await resp.json()
            assert (circuit["state"], circuit["reason"]) == ("held", "manual break")
    finally:
        await runner.cleanup()
    assert registry.get_sample_value("leak_sidecar_config_last_reload_successful") == 1
    skipped = "leak_sidecar_cooldown_skipped_total"
    assert registry.get_sample_value(skipped, {"action": "cache_flush"}) == 1
    events = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    foreign = [e["alertname"] for e in events if e["event"] == "alert.foreign"]
    assert foreign == ["Leak3", "Leak5"]
    reloaded = next(e for e in events if e["event"] == "config.reloaded")
    assert reloaded["applied"] == [
        "app.http_config.authorization.credentials",
        "scrape.interval",
        "scrape.timeout",
        "scrape.maps",
        "scrape.metric_relabel_configs",
        "rules.external_labels",
        "actions.cooldowns",
        "actions.routes",
        "breaker.min_open",
    ]
    assert not [e for e in events if e["event"] == "config.reload_restart_needed"]


async def test_a_broken_config_on_reload_keeps_every_running_setting(
    tmp_path: Path, registry: CollectorRegistry, log_stream: io.StringIO
) -> None:
    """A config that fails validation changes no key, not even the valid ones around it."""
    cfg = tmp_path / "sidecar.yaml"
    cfg.write_text(BEFORE.format(app="http://127.0.0.1:9"))
    sidecar = Sidecar(load(cfg, ENV), registry=registry, config_path=cfg, env=ENV)
    before = sidecar.reload.cfg
    cfg.write_text(AFTER.format(app="http://127.0.0.1:9").replace("interval: 2s", "interval: -2s"))
    assert sidecar.reload() == (
        "scrape.interval: expected a duration such as 15s, 10m or 1h30m, got '-2s'"
    )
    assert sidecar.reload.cfg is before
    assert registry.get_sample_value("leak_sidecar_config_last_reload_successful") == 0


@pytest.mark.parametrize(
    ("change", "replacement", "keys"),
    [
        ("server:\n  listen: 127.0.0.1:0", "server:\n  listen: 127.0.0.1:9999", ["server.listen"]),
        ("state_dir: st", "state_dir: other", ["state_dir"]),
        ("state_dir: st", "state_dir: st\nfleet:\n  settle: 10s", ["fleet.settle"]),
        (
            "state_dir: st",
            "state_dir: st\nfleet:\n  max_open_fraction: 0.2",
            ["fleet.max_open_fraction"],
        ),
        (
            "breaker:\n  min_open: 1m",
            "breaker:\n  min_open: 1m\n  dry_run: true",
            ["breaker.dry_run"],
        ),
    ],
)
async def test_keys_that_need_a_restart_are_named_leaf_by_leaf(
    tmp_path: Path,
    registry: CollectorRegistry,
    log_stream: io.StringIO,
    change: str,
    replacement: str,
    keys: list[str],
) -> None:
    """Each changed key a reload cannot apply is logged by its dotted name and keeps its
    running value, while the keys it can apply are applied."""
    cfg = tmp_path / "sidecar.yaml"
    text = BEFORE.format(app="http://127.0.0.1:9")
    cfg.write_text(text)
    sidecar = Sidecar(load(cfg, ENV), registry=registry, config_path=cfg, env=ENV)
    cfg.write_text(text.replace(change, replacement).replace("interval: 1s", "interval: 3s"))
    assert sidecar.reload() is None
    running = sidecar.reload.cfg
    held = (running.server.listen, running.state_dir.name, running.breaker.dry_run)
    assert (*held, running.fleet.settle) == ("127.0.0.1:0", "st", False, 30.0)
    assert running.scrape.interval == 3.0
    assert running.fleet.max_open_fraction == 0.1
    events = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    needed = [e for e in events if e["event"] == "config.reload_restart_needed"]
    assert [e["keys"] for e in needed] == [keys]


def test_changed_keys_walk_nested_models_to_the_leaf() -> None:
    """The diff names leaves (``scrape.interval``), a list or a dict as one key."""
    a = load(None, ENV)
    b = msgspec.structs.replace(
        a,
        scrape=msgspec.structs.replace(a.scrape, interval=30.0, maps=[]),
        rules=msgspec.structs.replace(a.rules, external_labels={"pod": "x"}),
    )
    # The default has no maps: ``maps: []`` changes nothing and is not named.
    assert changed_keys(a, b) == ["scrape.interval", "rules.external_labels"]


RULES_BEFORE = """
app:
  base_url: {app}
rules:
  files: [r.yml]
  evaluation_interval: 15s
breaker:
  min_open: 1m
  jitter: 0
server:
  listen: 127.0.0.1:0
state_dir: st
"""


async def test_a_reload_applies_the_evaluation_interval_and_the_breakers_open_time(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """After a reload the rule groups run at the new evaluation interval and a new break
    stays open for the new breaker.min_open, both as the API shows them."""
    app = DemoApp()
    runner = await serve("127.0.0.1", 0, app)
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    (tmp_path / "r.yml").write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: vector(0) > 1\n"
    )
    cfg = tmp_path / "sidecar.yaml"
    cfg.write_text(RULES_BEFORE.format(app=base))
    try:
        sidecar = Sidecar(load(cfg, ENV), registry=registry, config_path=cfg, env=ENV)
        async with running(sidecar), aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{sidecar.port}"
            cfg.write_text(
                RULES_BEFORE.format(app=base)
                .replace("evaluation_interval: 15s", "evaluation_interval: 30s")
                .replace("min_open: 1m", "min_open: 2m")
            )
            async with http.post(f"{url}/-/reload", headers=AUTH) as resp:
                assert resp.status == 200
            async with http.get(f"{url}/api/v1/rules") as resp:
                groups = (await resp.json())["data"]["groups"]
            assert [(g["name"], g["interval"]) for g in groups] == [("g", 30.0)]
            async with http.post(f"{url}/v1/circuit/break", json={}, headers=AUTH) as resp:
                assert resp.status == 202
            async with http.get(f"{url}/v1/circuit") as resp:
                circuit = await resp.json()
    finally:
        await runner.cleanup()
    since = datetime.fromisoformat(circuit["since"])
    until = datetime.fromisoformat(circuit["earliest_reset"])
    assert (circuit["state"], (until - since).total_seconds()) == ("open", 120.0)


async def test_a_reload_keeps_this_pods_forward_instance_in_the_routers_identity(
    tmp_path: Path, registry: CollectorRegistry, log_stream: io.StringIO
) -> None:
    """An alert about another instance sharing this pod's external labels stays another
    pod's after a reload: the reload's router knows fleet.forward.instance as the start's."""
    app = DemoApp()
    runner = await serve("127.0.0.1", 0, app)
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    cfg = tmp_path / "sidecar.yaml"
    fleet = "fleet:\n  forward: {instance: '10.0.0.1:9120'}\n"
    cfg.write_text(BEFORE.format(app=base) + fleet)
    try:
        sidecar = Sidecar(load(cfg, ENV), registry=registry, config_path=cfg, env=ENV)
        async with running(sidecar), aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{sidecar.port}"
            other = {"pod": "a", "instance": "10.0.0.2:9120", "action": "cache_flush"}
            await _post_alert(http, url, "Before", **other)
            cfg.write_text(BEFORE.format(app=base).replace("interval: 1s", "interval: 2s") + fleet)
            assert sidecar.reload() is None
            await _post_alert(http, url, "After", **other)
            await _post_alert(http, url, "Mine", **{**other, "instance": "10.0.0.1:9120"})
            await _calls_until(app, 1)
    finally:
        await runner.cleanup()
    assert [c.path for c in app.calls] == ["/v1/cache/flush"]
    events = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert [e["alertname"] for e in events if e["event"] == "alert.foreign"] == ["Before", "After"]
