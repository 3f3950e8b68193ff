"""Helpers for the PromQL tests: load series written in promtool's notation into a Store
(read by the same parser as ``test-rules``), and show a query's result compactly."""

from __future__ import annotations

from sidecar.rules.promql import query_vector
from sidecar.rules.unittest.series import parse_series
from sidecar.store import Store, StoreView

__all__ = ["load", "values"]


def load(series: dict[str, str], interval_ms: int = 60_000) -> Store:
    """A store holding each series' values at ``0, interval, 2*interval, ...``."""
    store = Store(retention_ms=10**15, max_series=100_000)
    for desc, text in series.items():
        labels, points = parse_series(desc, text)
        for i, v in enumerate(points):
            if v is not None:
                store.ingest(i * interval_ms, {labels: v}, origin=f"test:{desc}")
    return store


def values(q: str, store: StoreView, t: int = 0) -> dict[str, float]:
    """The result of ``q`` at ``t`` as {labels rendered ``k=v,k=v``: value}."""
    return {",".join(f"{k}={v}" for k, v in s.labels): s.value for s in query_vector(q, store, t)}
