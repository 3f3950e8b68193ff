"""Reload: the rule files swapped in whole or not at all, state carried, POST /-/reload."""

from __future__ import annotations

import io
import json
from pathlib import Path

import aiohttp
from conftest import running
from prometheus_client import CollectorRegistry

from sidecar.core.config_load import load
from sidecar.rules.files import load_rules
from sidecar.rules.groups import carry_state, runtime_groups
from sidecar.supervisor import Sidecar

TOKEN = "s3cret"
ENV = {"LEAK_SIDECAR_TOKEN": TOKEN}


def _rule(name: str) -> str:
    return f"groups:\n  - name: g\n    rules:\n      - alert: {name}\n        expr: vector(1)\n"


def _setup(tmp_path: Path, listen: str = "127.0.0.1:0") -> Path:
    (tmp_path / "rules.yml").write_text(_rule("First"))
    cfg = tmp_path / "sidecar.yaml"
    cfg.write_text(f"rules:\n  files: [rules.yml]\nserver:\n  listen: {listen}\nstate_dir: st\n")
    return cfg


def _sidecar(cfg: Path, registry: CollectorRegistry) -> Sidecar:
    return Sidecar(load(cfg, ENV), registry=registry, config_path=cfg, env=ENV)


def _names(sidecar: Sidecar) -> list[str]:
    return [r.name for g in sidecar.groups for r in g.rules]


def _events(log_stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in log_stream.getvalue().splitlines()]


async def test_a_reload_swaps_in_the_new_rules(
    tmp_path: Path, registry: CollectorRegistry, log_stream: io.StringIO
) -> None:
    """A changed rule file is evaluated after a reload, and /v1/rules shows it."""
    cfg = _setup(tmp_path)
    async with running(_sidecar(cfg, registry)) as sidecar:
        (tmp_path / "rules.yml").write_text(_rule("Second"))
        assert sidecar.reload() is None
        assert _names(sidecar) == ["Second"]
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{sidecar.port}/v1/rules") as resp,
        ):
            groups = (await resp.json())["data"]["groups"]
        assert [r["name"] for g in groups for r in g["rules"]] == ["Second"]
    assert registry.get_sample_value("leak_sidecar_config_last_reload_successful") == 1
    reloaded = next(e for e in _events(log_stream) if e["event"] == "config.reloaded")
    assert reloaded["rules"] == 1


async def test_a_broken_rule_file_keeps_the_old_rules_and_says_why(
    tmp_path: Path, registry: CollectorRegistry, log_stream: io.StringIO
) -> None:
    """A reload that fails validation changes nothing, logs the reason and sets the gauge."""
    cfg = _setup(tmp_path)
    sidecar = _sidecar(cfg, registry)
    before = registry.get_sample_value("leak_sidecar_config_last_reload_success_timestamp_seconds")
    (tmp_path / "rules.yml").write_text(_rule("Second").replace("vector(1)", "sum(x"))
    problem = sidecar.reload()
    assert problem is not None
    assert "could not parse expression" in problem
    assert _names(sidecar) == ["First"]
    assert registry.get_sample_value("leak_sidecar_config_last_reload_successful") == 0
    assert (
        registry.get_sample_value("leak_sidecar_config_last_reload_success_timestamp_seconds")
        == before
    )
    failed = [e for e in _events(log_stream) if e["event"] == "config.reload_failed"]
    assert failed[0]["problem"] == problem


async def test_keys_a_reload_cannot_apply_are_named(
    tmp_path: Path, registry: CollectorRegistry, log_stream: io.StringIO
) -> None:
    """A changed listen address is logged as needing a restart; the rules still reload."""
    cfg = _setup(tmp_path)
    sidecar = _sidecar(cfg, registry)
    cfg.write_text(cfg.read_text().replace("127.0.0.1:0", "127.0.0.1:9999"))
    (tmp_path / "rules.yml").write_text(_rule("Second"))
    assert sidecar.reload() is None
    assert _names(sidecar) == ["Second"]
    assert sidecar.reload.cfg.server.listen == "127.0.0.1:0"
    needed = [e for e in _events(log_stream) if e["event"] == "config.reload_restart_needed"]
    assert needed[0]["keys"] == ["server.listen"]


def test_alert_state_carries_over_by_group_and_name(tmp_path: Path) -> None:
    """An alert's pending or firing state survives a reload of its unchanged rule."""
    (tmp_path / "r.yml").write_text(_rule("First"))
    cfg = load(None, ENV).rules
    specs = load_rules([str(tmp_path / "r.yml")])
    old, new = runtime_groups(specs, cfg), runtime_groups(specs, cfg)
    rule = old[0].alerting()[0]
    rule.active = {(): object()}  # type: ignore[dict-item]
    rule.restored = True
    carry_state(old, new)
    assert new[0].alerting()[0].active is rule.active
    assert new[0].alerting()[0].restored


async def test_post_reload_needs_the_token(tmp_path: Path, registry: CollectorRegistry) -> None:
    """POST /-/reload is 401 without the bearer token, 200 with it, 500 with the reason."""
    cfg = _setup(tmp_path)
    async with running(_sidecar(cfg, registry)) as sidecar, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{sidecar.port}/-/reload"
        async with http.post(url) as resp:
            assert resp.status == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with http.post(url, headers=auth) as resp:
            assert resp.status == 200
        (tmp_path / "rules.yml").write_text("groups: [")
        async with http.post(url, headers=auth) as resp:
            assert resp.status == 500
            assert (await resp.json())["error"].startswith("failed to reload config: ")
