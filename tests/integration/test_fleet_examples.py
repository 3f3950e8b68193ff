"""examples/fleet checked with the real tools: amtool, the sidecar's config loader."""

from __future__ import annotations

import glob
import subprocess
from pathlib import Path

import pytest
import yaml
from actions_support import TOKEN
from fleet_support import EXAMPLES, PACK
from procs import binary

from sidecar.core.config_load import load

pytestmark = pytest.mark.integration


def _amtool_routes(*labels: str) -> str:
    proc = subprocess.run(
        [
            binary("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={EXAMPLES / 'alertmanager.yml'}",
            *labels,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return proc.stdout.strip()


def test_fleet_examples_check_route_and_load() -> None:
    """examples/fleet: amtool accepts alertmanager.yml, which sends a pod's action alerts to
    that pod's sidecar and the team, the rest to the team; prometheus.yml reads the shipped
    rules; sidecar.yaml loads with the pod's identity and the engine off."""
    check = subprocess.run(
        [binary("amtool"), "check-config", str(EXAMPLES / "alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.splitlines() == [
        f"Checking '{EXAMPLES / 'alertmanager.yml'}'  SUCCESS",
        "Found:",
        " - global config",
        " - route",
        " - 0 inhibit rules",
        " - 3 receivers",
        " - 0 templates",
        "",
    ]
    routed = {
        (pod, action): _amtool_routes(
            "alertname=CacheKeysGrowing", "namespace=shop", f"pod={pod}", f"action={action}"
        )
        for pod in ("orders-0", "orders-1", "orders-2")
        for action in ("cache_flush", "none")
    }
    assert routed == {
        ("orders-0", "cache_flush"): "leak-sidecar-orders-0,team",
        ("orders-0", "none"): "team",
        ("orders-1", "cache_flush"): "leak-sidecar-orders-1,team",
        ("orders-1", "none"): "team",
        ("orders-2", "cache_flush"): "team",
        ("orders-2", "none"): "team",
    }

    prom = yaml.safe_load((EXAMPLES / "prometheus.yml").read_text())
    files = [Path(f).resolve() for g in prom["rule_files"] for f in glob.glob(str(EXAMPLES / g))]
    assert files == [PACK]

    env = {"POD_NAME": "orders-0", "POD_NAMESPACE": "shop", "LEAK_SIDECAR_TOKEN": TOKEN}
    cfg = load(EXAMPLES / "sidecar.yaml", env)
    assert (cfg.rules.files, cfg.rules.external_labels, cfg.rules.alertmanager_url) == (
        [],
        {"namespace": "shop", "pod": "orders-0"},
        None,
    )
    assert cfg.token is not None
    assert (cfg.server.listen, cfg.token.get_secret_value()) == ("0.0.0.0:9120", TOKEN)
