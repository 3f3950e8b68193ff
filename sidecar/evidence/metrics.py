"""The evidence stage's own metrics, ``leak_sidecar_evidence_*``, on the injected registry.

Every label value is pre-created at zero, so that a dashboard or an alert on a rate sees
the series before the first failure.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from sidecar.evidence.fetch import REASONS

__all__ = ["PARTS", "SKIP_REASONS", "EvidenceMetrics"]

PARTS = ("heap", "goroutine", "allocs", "vars")
"""The ``part`` label: what a capture fetches (and ``store``: writing the bundle)."""
SKIP_REASONS = ("cooldown", "app_struggling")
"""The ``reason`` label of ``leak_sidecar_evidence_skipped_total``."""


class EvidenceMetrics:
    """Counters and gauges of captures, failures, skips and the bundles kept."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.captures = Counter(
            "leak_sidecar_evidence_captures_total",
            "Evidence captures finished, by trigger (alert, manual, baseline).",
            ["trigger"],
            registry=registry,
        )
        self.failures = Counter(
            "leak_sidecar_evidence_failures_total",
            "Parts of a capture that could not be fetched or read, by part and reason.",
            ["part", "reason"],
            registry=registry,
        )
        self.skipped = Counter(
            "leak_sidecar_evidence_skipped_total",
            "Captures not started, by reason (cooldown, app_struggling).",
            ["reason"],
            registry=registry,
        )
        self.dropped = Counter(
            "leak_sidecar_evidence_dropped_total",
            "Evidence bundles deleted to keep evidence.max_bundles and evidence.max_bytes.",
            registry=registry,
        )
        self.duration = Gauge(
            "leak_sidecar_evidence_capture_duration_seconds",
            "How long the last capture took, fetching, decoding and storing.",
            registry=registry,
        )
        # Set when bundles are written or dropped: a scrape of /metrics reads no disk.
        self.bundles = Gauge(
            "leak_sidecar_evidence_bundles",
            "Evidence bundles stored.",
            registry=registry,
        )
        for part in PARTS:
            for reason in REASONS:
                self.failures.labels(part, reason)
        self.failures.labels("store", "write_failed")
        for reason in SKIP_REASONS:
            self.skipped.labels(reason)
