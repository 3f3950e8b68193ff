"""Helpers for the fleet tests: real Prometheus and Alertmanager around an in-process sidecar.

``prometheus_config`` is ``examples/fleet/prometheus.yml`` made to run on loopback, so
that the live test runs the example's relabeling; every wait is bounded by ``WAIT``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import yaml
from actions_support import TOKEN, config, journal_entries
from conftest import running
from inject_support import SIDECAR
from procs import alertmanager_config
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from sidecar.actions.journal import JOURNAL_FILE
from sidecar.core.config import Config
from sidecar.rules.files import load_rules
from sidecar.supervisor import Sidecar

__all__ = [
    "CACHE_KEYS_BREAK",
    "EXAMPLES",
    "PACK",
    "WAIT",
    "am_alert",
    "am_alerts",
    "am_config",
    "counted",
    "credentials_file",
    "eventually",
    "get_json",
    "journaled_actions",
    "pod_target",
    "pods",
    "prometheus_config",
    "queried_names",
    "query",
    "rule_file",
    "running_sidecar",
    "scrape_samples",
    "sidecar_config",
]

_T = TypeVar("_T")

ROOT = Path(__file__).parents[2]
PACK = ROOT / "rules" / "leaks.yml"
EXAMPLES = ROOT / "examples" / "fleet"
SIDECAR_PORT: str = SIDECAR["ports"][0]["name"]
WAIT = 45.0  # bound on any one wait for the processes


CACHE_KEYS_BREAK = """
      - alert: CacheKeysLeaking
        expr: cache_keys_total > 3000
        for: 1s
        labels:
          action: circuit_break"""
"""A break rule for the Go service (tests/integration/goservice.py) once it leaks."""


def rule_file(path: Path, *rules: str) -> Path:
    """A rule file with one group, ``fleet-test``, holding ``rules`` (YAML items)."""
    path.write_text("groups:\n  - name: fleet-test\n    rules:" + "".join(rules))
    return path


def pod_target(
    port: int, pod: str, container: str = SIDECAR["name"], port_name: str = SIDECAR_PORT
) -> dict[str, Any]:
    """A static target with the discovery labels Kubernetes' pod role would give it; by
    default the sidecar's container and port, named as the shared contract names them."""
    return {
        "targets": [f"127.0.0.1:{port}"],
        "labels": {
            "__meta_kubernetes_namespace": "shop",
            "__meta_kubernetes_pod_name": pod,
            "__meta_kubernetes_pod_container_name": container,
            "__meta_kubernetes_pod_container_port_name": port_name,
            "__meta_kubernetes_pod_label_app_kubernetes_io_name": "orders",
        },
    }


def prometheus_config(sidecar_port: int, am_port: int, rule_files: list[Path]) -> str:
    """examples/fleet/prometheus.yml on loopback: 1s intervals, these rule files, and
    static targets in place of Kubernetes discovery (Debian's build has none), which its
    relabeling turns into the pod's target labels."""
    cfg = yaml.safe_load((EXAMPLES / "prometheus.yml").read_text())
    cfg["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    cfg["rule_files"] = [str(f) for f in rule_files]
    cfg["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
    (job,) = cfg["scrape_configs"]
    del job["kubernetes_sd_configs"]
    job["static_configs"] = [
        pod_target(sidecar_port, "demo-0"),
        # The same sidecar under another pod's name: its alerts are another pod's
        # alerts, which a wrong route delivers to this sidecar.
        pod_target(sidecar_port, "demo-1"),
        # The app's container: the keep rule drops it.
        pod_target(sidecar_port, "demo-0", container="app", port_name="metrics"),
    ]
    return yaml.safe_dump(cfg)


@asynccontextmanager
async def running_sidecar(cfg: Config) -> AsyncIterator[str]:
    """The whole sidecar in process on real time; yields its base URL."""
    async with running(Sidecar(cfg)) as sidecar:
        yield f"http://127.0.0.1:{sidecar.port}"


def sidecar_config(tmp_path: Path, app_url: str, **sections: Any) -> Config:
    """A loopback sidecar with a token, scraping every second; ``sections`` override."""
    return config(
        tmp_path / "state",
        app_url,
        scrape={"interval": "1s", "timeout": "500ms"},
        token=TOKEN,
        **sections,
    )


def credentials_file(tmp_path: Path) -> Path:
    """The token in a file, as Alertmanager's ``credentials_file`` reads it."""
    path = tmp_path / "sidecar-token"
    path.write_text(TOKEN + "\n")
    return path


def am_config(sidecar_url: str, credentials: Path) -> str:
    """Alertmanager posting at once (group_wait 0s) to the sidecar's /alerts, with the token."""
    return alertmanager_config(
        f"{sidecar_url}/alerts",
        credentials,
        group_wait="0s",
        group_interval="1s",
        repeat_interval="1h",
    )


async def get_json(http: aiohttp.ClientSession, url: str, **params: str) -> Any:
    """GET ``url``, expect 200, decode the JSON."""
    async with http.get(url, params=params) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def am_alerts(http: aiohttp.ClientSession, am_url: str) -> list[dict[str, Any]]:
    """Alertmanager's active alerts, silenced ones included."""
    alerts: list[dict[str, Any]] = await get_json(http, f"{am_url}/api/v2/alerts")
    return alerts


def am_alert(alerts: list[dict[str, Any]], **labels: str) -> dict[str, Any]:
    """The one alert of ``alerts`` with these label values."""
    (found,) = [a for a in alerts if labels.items() <= a["labels"].items()]
    return found


def pods(alerts: list[dict[str, Any]], alertname: str) -> set[str]:
    """The ``pod`` label values of the alerts named ``alertname``."""
    return {a["labels"].get("pod", "") for a in alerts if a["labels"]["alertname"] == alertname}


async def eventually(
    fetch: Callable[[], Awaitable[_T]], done: Callable[[_T], bool], within: float = WAIT
) -> _T:
    """Poll another process over HTTP until ``done`` holds for its answer (bounded)."""
    async with asyncio.timeout(within):
        while True:
            value = await fetch()
            if done(value):
                return value
            await asyncio.sleep(0.2)


async def scrape_samples(http: aiohttp.ClientSession, url: str) -> list[Sample]:
    """Every sample of ``url``/metrics, parsed with prometheus_client's parser."""
    async with http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    return [s for f in text_string_to_metric_families(text) for s in f.samples]


def counted(samples: list[Sample], name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of one metric."""
    return [(s.labels, s.value) for s in samples if s.name == name]


async def query(http: aiohttp.ClientSession, prom_url: str, expr: str) -> list[dict[str, Any]]:
    """An instant query's result vector from Prometheus's HTTP API."""
    body = await get_json(http, f"{prom_url}/api/v1/query", query=expr)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def journaled_actions(state_dir: Path) -> list[dict[str, Any]]:
    """Every action record the sidecar journaled, in order."""
    return [a for e in journal_entries(state_dir / JOURNAL_FILE) for a in e.get("actions", [])]


def queried_names(path: Path) -> set[str]:
    """Every metric name the rules of ``path`` select, as the sidecar's loader reads them."""
    return {n for g in load_rules([str(path)]) for r in g.rules for n in r.query.metric_names}
