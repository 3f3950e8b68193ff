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
    """examples/fleet: amtool accepts alertmanager.yml, which sends every action alert of the
    workload to its sidecars' Service and the team, the rest to the team; prometheus.yml
    reads the shipped rules; sidecar.yaml loads with the pod's identity, the engine off,
    forwarding within the pod network and the fleet budget."""
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
        " - 2 receivers",
        " - 0 templates",
        "",
    ]
    routed = {
        (app, pod, action): _amtool_routes(
            "alertname=CacheKeysGrowing",
            "namespace=shop",
            f"app_kubernetes_io_name={app}",
            f"pod={pod}",
            f"action={action}",
        )
        for app, pod in (("orders", "orders-0"), ("orders", "orders-7f9c-x2"), ("cart", "cart-0"))
        for action in ("circuit_break", "none")
    }
    # Every pod of the workload through one receiver (its Service); other workloads not.
    assert routed == {
        ("orders", "orders-0", "circuit_break"): "leak-sidecar-orders,team",
        ("orders", "orders-0", "none"): "team",
        ("orders", "orders-7f9c-x2", "circuit_break"): "leak-sidecar-orders,team",
        ("orders", "orders-7f9c-x2", "none"): "team",
        ("cart", "cart-0", "circuit_break"): "team",
        ("cart", "cart-0", "none"): "team",
    }

    prom = yaml.safe_load((EXAMPLES / "prometheus.yml").read_text())
    files = [Path(f).resolve() for g in prom["rule_files"] for f in glob.glob(str(EXAMPLES / g))]
    assert files == [PACK]

    env = {
        "POD_NAME": "orders-0",
        "POD_NAMESPACE": "shop",
        "POD_IP": "10.1.2.3",
        "LEAK_SIDECAR_TOKEN": TOKEN,
    }
    cfg = load(EXAMPLES / "sidecar.yaml", env)
    assert (cfg.rules.files, cfg.rules.external_labels, cfg.rules.alertmanager_url) == (
        [],
        {"namespace": "shop", "pod": "orders-0"},
        None,
    )
    assert cfg.token is not None
    assert (cfg.server.listen, cfg.token.get_secret_value()) == ("0.0.0.0:9120", TOKEN)
    forward = cfg.fleet.forward
    assert (forward.allow, forward.port, forward.label, forward.instance) == (
        ["10.0.0.0/8"],
        9120,
        "instance",
        "10.1.2.3:9120",
    )
    assert (cfg.fleet.prometheus_url, cfg.fleet.workload) == (
        "http://prometheus.monitoring.svc:9090",
        {"namespace": "shop", "app_kubernetes_io_name": "orders"},
    )
