"""The sidecar's own process-wide metrics, registered once at start.

``register`` adds what no stage owns: the store's retention and size, the app's memory
limit (``memory_limit`` reads it from config or the Downward API file), the build info
and the process collector; it also turns off the ``_created`` twins of counters.
``limit_series`` is the memory limit as a series the scrape stage adds to the store, so
that rules can read it.
"""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Gauge, ProcessCollector, disable_created_metrics

from sidecar import __version__
from sidecar.core.config import Config
from sidecar.core.errors import ConfigError
from sidecar.core.model import LabelSet, labelset
from sidecar.rules.promql.native import range_kernels
from sidecar.store import Store
from sidecar.web.thresholds import MEMORY_LIMIT_METRIC

__all__ = ["limit_series", "memory_limit", "register"]


def memory_limit(cfg: Config) -> int | None:
    """The app container's memory limit from config or its Downward API file."""
    if cfg.app.memory_limit_bytes is not None:
        return cfg.app.memory_limit_bytes
    path = cfg.app.memory_limit_file
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError([f"app.memory_limit_file: cannot read {path}: {exc.strerror}"]) from exc
    if not text.isdigit() or int(text) == 0:
        problem = f"expected a positive number of bytes in {path}, got {text[:40]!r}"
        raise ConfigError([f"app.memory_limit_file: {problem}"])
    return int(text)


def limit_series(limit: int | None) -> dict[LabelSet, float]:
    """The memory limit as the scrape stage's constant series; none without a limit."""
    if limit is None:
        return {}
    return {labelset({"__name__": MEMORY_LIMIT_METRIC}): float(limit)}


def register(registry: CollectorRegistry, store: Store, limit: int | None) -> None:
    """Register the process-wide metrics on ``registry``."""
    Gauge(
        "leak_sidecar_store_retention_seconds",
        "History kept per series: the longest rule range plus the 5m lookback, capped.",
        registry=registry,
    ).set(store.retention_ms / 1000)
    Gauge(
        "leak_sidecar_store_series",
        "Series held in the store: scraped, recorded and the sidecar's own.",
        registry=registry,
    ).set_function(lambda: len(store))
    if limit is not None:
        Gauge(
            MEMORY_LIMIT_METRIC,
            "The app container's memory limit, from config or the Downward API.",
            registry=registry,
        ).set(limit)
    Gauge(
        "leak_sidecar_build_info",
        "Always 1: the sidecar's version, its Python and whether its range functions run "
        "in C or Python, as labels (Prometheus's build_info).",
        ["version", "python", "range_kernels"],
        registry=registry,
    ).labels(__version__, platform.python_version(), range_kernels()).set(1)
    # The sidecar's own CPU, memory and file descriptors: it runs in every pod, so
    # its cost is multiplied by the fleet and must be seen.
    ProcessCollector(registry=registry)
    # A _created twin per counter doubles the series for nothing Prometheus uses
    # (it reads resets from the values); the switch is process-wide in the library.
    disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
