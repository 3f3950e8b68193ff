"""The scrape stage's own metrics: ``leak_sidecar_target_up``, durations, sizes, counts.

``ScrapeMetrics`` registers them on the process's registry, each labelled counter with
every label value it can take from the start (so that ``rate()`` works on the first
error); the ``Scraper`` sets and counts them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from sidecar.scrape.fetch import ERROR_REASONS, TRANSIENT_REASONS
from sidecar.scrape.flatten import COLLAPSE_REASONS, DROP_REASONS
from sidecar.scrape.relabel import CONFLICT

__all__ = ["ScrapeMetrics"]


class ScrapeMetrics:
    """The scrape's gauges and counters, on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, registry=registry)

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        self.up = gauge(
            "leak_sidecar_target_up",
            "1 if the last scrape of the app's expvar endpoint succeeded, 0 if it failed.",
        )
        self.duration = gauge(
            "leak_sidecar_scrape_duration_seconds",
            "How long the last scrape took, retries and decoding included.",
        )
        self.body = gauge(
            "leak_sidecar_scrape_body_bytes",
            "Size of the last expvar body read; a growing body is itself a leak signal.",
        )
        self.series = gauge(
            "leak_sidecar_series", "Number of samples the last successful scrape produced."
        )
        self.interval = gauge(
            "leak_sidecar_scrape_interval_seconds",
            "Effective scrape interval: scrape.interval, stretched while scrapes are costly.",
        )
        self.scrapes = counter(
            "leak_sidecar_scrapes", "Scrapes of the app's expvar endpoint, failed ones included."
        )
        self.errors = counter(
            "leak_sidecar_scrape_errors",
            "Scrapes of the app's expvar endpoint that failed, by reason.",
            ("reason",),
        )
        self.retries = counter(
            "leak_sidecar_scrape_retries",
            "Scrape attempts retried after a transient failure, by reason.",
            ("reason",),
        )
        self.collapsed = counter(
            "leak_sidecar_scrape_objects_collapsed",
            "Expvar objects exported as <name>_keys instead of being expanded, by reason.",
            ("reason",),
        )
        self.collisions = counter(
            "leak_sidecar_scrape_name_collisions",
            "Expvar values dropped because another one already took their metric name.",
        )
        self.dropped = counter(
            "leak_sidecar_scrape_series_dropped",
            "Samples of the app not kept, by reason: a cap reached, or a relabelling conflict.",
            ("reason",),
        )
        # Every label value exists from the start, so that rate() works on the first error.
        for reason in ERROR_REASONS:
            self.errors.labels(reason)
        for reason in TRANSIENT_REASONS:
            self.retries.labels(reason)
        for reason in COLLAPSE_REASONS:
            self.collapsed.labels(reason)
        for reason in (*DROP_REASONS, CONFLICT, "store_full"):
            self.dropped.labels(reason)
