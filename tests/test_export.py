"""The expvar collector: families and types from the snapshot's metadata, no history."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sidecar.core.model import MetricMeta, labelset
from sidecar.scrape.export import ExpvarCollector
from sidecar.store import Store


def _families(
    store: Store, meta: dict[str, MetricMeta]
) -> dict[str, tuple[str, list[tuple[str, dict[str, str], float]]]]:
    reg = CollectorRegistry()
    reg.register(ExpvarCollector(store, lambda: meta))
    text = generate_latest(reg).decode()
    return {
        f.name: (f.type, [(s.name, s.labels, s.value) for s in f.samples])
        for f in text_string_to_metric_families(text)
    }


def test_latest_values_are_exported_with_their_types() -> None:
    """Counters keep _total, gauges are gauges, info keeps _info once, unknown are untyped."""
    st = Store(retention_ms=60_000, max_series=100)
    st.ingest(
        1000,
        {
            labelset({"__name__": "go_memstats_mallocs_total"}): 5.0,
            labelset({"__name__": "go_memstats_heap_alloc_bytes"}): 7.0,
            labelset({"__name__": "caches", "cache": "orders"}): 3.0,
        },
    )
    st.ingest(
        2000,
        {
            labelset({"__name__": "go_memstats_mallocs_total"}): 6.0,
            labelset({"__name__": "go_memstats_heap_alloc_bytes"}): 8.0,
            labelset({"__name__": "caches", "cache": "orders"}): 4.0,
            labelset({"__name__": "version_info", "value": "1.4.2"}): 1.0,
        },
    )
    meta = {
        "go_memstats_mallocs_total": MetricMeta("counter", "Total number of mallocs."),
        "go_memstats_heap_alloc_bytes": MetricMeta("gauge", "Heap bytes allocated and in use."),
        "version_info": MetricMeta("info", "The app's version."),
    }
    # The text format writes an info family as a gauge named <name>_info.
    assert _families(st, meta) == {
        "go_memstats_mallocs": ("counter", [("go_memstats_mallocs_total", {}, 6.0)]),
        "go_memstats_heap_alloc_bytes": ("gauge", [("go_memstats_heap_alloc_bytes", {}, 8.0)]),
        "caches": ("unknown", [("caches", {"cache": "orders"}, 4.0)]),
        "version_info": ("gauge", [("version_info", {"value": "1.4.2"}, 1.0)]),
    }


def test_stale_series_and_rule_outputs_are_not_exported() -> None:
    """Only live scrape series appear; recorded series stay inside the sidecar."""
    st = Store(retention_ms=60_000, max_series=100)
    st.ingest(1000, {labelset({"__name__": "a"}): 1.0, labelset({"__name__": "b"}): 2.0})
    st.ingest(1000, {labelset({"__name__": "rec"}): 3.0}, origin="rule:g/0")
    st.ingest(2000, {labelset({"__name__": "a"}): 1.0})
    assert _families(st, {}) == {"a": ("unknown", [("a", {}, 1.0)])}


def test_app_cannot_shadow_the_sidecars_own_metrics() -> None:
    """An expvar named leak_sidecar_* is not exported: that namespace is the sidecar's."""
    st = Store(retention_ms=60_000, max_series=100)
    st.ingest(1000, {labelset({"__name__": "leak_sidecar_target_up"}): 1.0})
    assert _families(st, {}) == {}


def test_summary_samples_form_one_family() -> None:
    """A summary's quantiles, _sum and _count are exported as one summary family."""
    st = Store(retention_ms=60_000, max_series=100)
    st.ingest(
        1000,
        {
            labelset({"__name__": "go_gc_duration_seconds", "quantile": "0.5"}): 0.001,
            labelset({"__name__": "go_gc_duration_seconds_sum"}): 0.5,
            labelset({"__name__": "go_gc_duration_seconds_count"}): 10.0,
        },
    )
    meta = {"go_gc_duration_seconds": MetricMeta("summary", "GC pause durations.")}
    assert _families(st, meta) == {
        "go_gc_duration_seconds": (
            "summary",
            [
                ("go_gc_duration_seconds", {"quantile": "0.5"}, 0.001),
                ("go_gc_duration_seconds_sum", {}, 0.5),
                ("go_gc_duration_seconds_count", {}, 10.0),
            ],
        )
    }
