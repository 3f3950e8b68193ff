"""GET /metrics content: the app's expvar numbers as the store holds them, plus own metrics.

``ExpvarCollector`` is a prometheus_client custom collector: ``collect()`` walks the
store's latest scrape-origin samples and does no I/O and no parsing, so a Prometheus
scrape of the sidecar costs one pass over the live series, never the history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from sidecar.core.model import MetricMeta
from sidecar.scrape.flatten import OWN_PREFIX, family_of
from sidecar.store import StoreView

__all__ = ["ExpvarCollector"]

_DEFAULT_HELP = "Value read from the application's expvar endpoint."


class ExpvarCollector(Collector):
    """Expose the newest value of every live series scraped from the app."""

    def __init__(self, store: StoreView, meta: Callable[[], Mapping[str, MetricMeta]]) -> None:
        self._store = store
        self._meta = meta

    def collect(self) -> Iterator[Metric]:
        """Yield one family per metric; a counter's sample keeps ``_total``, a summary's
        ``_sum`` and ``_count`` join their family."""
        meta = self._meta()
        families: dict[str, Metric] = {}
        for labels, value in self._store.latest():
            # add_sample wants the labels as a dict anyway: take the name out of it.
            others = dict(labels)
            name = others.pop("__name__", "")
            # The app cannot speak for the sidecar: its own namespace is reserved.
            if not name or name.startswith(OWN_PREFIX):
                continue
            key = family_of(name, meta)
            fam = families.get(key)
            if fam is None:
                fam = families[key] = _family(key, meta.get(key))
            fam.add_sample(name, others, value)
        yield from families.values()


def _family(name: str, meta: MetricMeta | None) -> Metric:
    kind = meta.kind if meta else "untyped"
    doc = meta.help if meta else _DEFAULT_HELP
    if kind == "counter" and name.endswith("_total"):
        return Metric(name.removesuffix("_total"), doc, "counter")
    if kind == "summary":
        return Metric(name, doc, "summary")
    if kind == "info" and name.endswith("_info"):
        return Metric(name.removesuffix("_info"), doc, "info")
    return Metric(name, doc, "gauge" if kind == "gauge" else "unknown")
