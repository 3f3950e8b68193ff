"""Decoding and flattening expvar bodies: real Go payloads first, then every rule and cap."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec import ValidationError

from sidecar.core.config import MapConfig, ScrapeConfig
from sidecar.core.errors import ScrapeError
from sidecar.core.model import MetricMeta
from sidecar.core.validation import Problem
from sidecar.scrape import memstats
from sidecar.scrape.flatten import Flattened, family_of, flatten, sanitize
from sidecar.scrape.jsonscan import count_members

GOAPP = Path(__file__).parent / "fixtures" / "goapp"
DOCS = Path(__file__).parent.parent / "docs" / "scrape.md"

MAPS = [
    {"path": "caches", "labels": ["cache"]},
    {"path": "pool", "labels": ["pool", "field"]},
    {"path": "http.requests-by-code", "labels": ["code"], "name": "http_requests"},
]


def body(name: str) -> bytes:
    return (GOAPP / name).read_bytes()


def cfg(**kw: Any) -> ScrapeConfig:
    return ScrapeConfig.validate(kw)


def flat(doc: Any, **kw: Any) -> Flattened:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return flatten(raw, cfg(**kw))


def samples(f: Flattened) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples keyed by (name, other labels), easier to write down than label sets."""
    out = {}
    for labels, value in f.samples.items():
        name = dict(labels)["__name__"]
        out[name, tuple(kv for kv in labels if kv[0] != "__name__")] = value
    return out


def one(f: Flattened, name: str, **labels: str) -> float:
    return samples(f)[name, tuple(sorted(labels.items()))]


# -- the real Go payloads ------------------------------------------------------------------


def test_go_fixture_flattens_sample_by_sample() -> None:
    """Every sample of Go's real /debug/vars, memstats in client_golang's names and units."""
    f = flatten(body("vars.json"), cfg(maps=MAPS))
    assert samples(f) == {
        ("go_memstats_alloc_bytes", ()): 573848.0,
        ("go_memstats_alloc_bytes_total", ()): 706328.0,
        ("go_memstats_sys_bytes", ()): 13351952.0,
        ("go_memstats_lookups_total", ()): 0.0,
        ("go_memstats_mallocs_total", ()): 11269.0,
        ("go_memstats_frees_total", ()): 1541.0,
        ("go_memstats_heap_alloc_bytes", ()): 573848.0,
        ("go_memstats_heap_sys_bytes", ()): 3899392.0,
        ("go_memstats_heap_idle_bytes", ()): 2719744.0,
        ("go_memstats_heap_inuse_bytes", ()): 1179648.0,
        ("go_memstats_heap_released_bytes", ()): 2678784.0,
        ("go_memstats_heap_objects", ()): 9728.0,
        ("go_memstats_stack_inuse_bytes", ()): 294912.0,
        ("go_memstats_stack_sys_bytes", ()): 294912.0,
        ("go_memstats_mspan_inuse_bytes", ()): 30240.0,
        ("go_memstats_mspan_sys_bytes", ()): 32544.0,
        ("go_memstats_mcache_inuse_bytes", ()): 2400.0,
        ("go_memstats_mcache_sys_bytes", ()): 15600.0,
        ("go_memstats_buck_hash_sys_bytes", ()): 3792.0,
        ("go_memstats_gc_sys_bytes", ()): 8482704.0,
        ("go_memstats_other_sys_bytes", ()): 623008.0,
        ("go_memstats_next_gc_bytes", ()): 4194304.0,
        # LastGC is 1795630157450703390 ns since the epoch.
        ("go_memstats_last_gc_time_seconds", ()): 1795630157.4507034,
        ("go_memstats_gc_cpu_fraction", ()): 0.02400508532174673,
        ("go_gc_cycles_total", ()): 3.0,
        # PauseNs starts [85797, 17795, 5158, 0, ...]; NumGC 3: newest at (3+255)%256 = 2.
        ("go_memstats_last_gc_pause_seconds", ()): 5.158e-06,
        ("go_gc_duration_seconds", (("quantile", "0"),)): 5.158e-06,
        ("go_gc_duration_seconds", (("quantile", "0.25"),)): 5.158e-06,
        ("go_gc_duration_seconds", (("quantile", "0.5"),)): 1.7795e-05,
        ("go_gc_duration_seconds", (("quantile", "0.75"),)): 8.5797e-05,
        ("go_gc_duration_seconds", (("quantile", "1"),)): 8.5797e-05,
        ("go_gc_duration_seconds_sum", ()): 0.00010875,
        ("go_gc_duration_seconds_count", ()): 3.0,
        # Fields client_golang does not export keep their expvar names.
        ("go_memstats_debug_gc", ()): 0.0,
        ("go_memstats_enable_gc", ()): 1.0,
        ("go_gc_cycles_forced_gc_cycles_total", ()): 3.0,
        ("caches", (("cache", "orders"),)): 42.0,
        ("caches", (("cache", "sessions"),)): 1001.0,
        ("caches", (("cache", "users"),)): 7.0,
        ("pool", (("field", "active"), ("pool", "db"))): 2.0,
        ("pool", (("field", "idle"), ("pool", "db"))): 3.0,
        ("pool", (("field", "utilization"), ("pool", "db"))): 0.2,
        ("pool", (("field", "active"), ("pool", "redis"))): 5.0,
        ("pool", (("field", "idle"), ("pool", "redis"))): 3.0,
        ("pool", (("field", "utilization"), ("pool", "redis"))): 0.5,
        ("http_requests", (("code", "200"),)): 900.0,
        ("http_requests", (("code", "404"),)): 12.0,
        ("http_requests", (("code", "500"),)): 3.0,
        ("build_modified", ()): 0.0,
        ("build_number", ()): 17.0,
        ("goroutines", ()): 4.0,
        ("hit_ratio", ()): 0.5,
        # 1500 keys, more than max_object_keys: counted, not expanded.
        ("leaky_sessions_keys", ()): 1500.0,
        ("load_average", ()): 0.75,
        ("ready", ()): 1.0,
        ("requests", ()): 1234.0,
    }
    assert f.warnings == (
        "'leaky_sessions' has more than scrape.max_object_keys (1000) keys: "
        "exported as leaky_sessions_keys = 1500",
    )
    assert f.collapsed == {"max_object_keys": 1, "max_depth": 0}
    assert f.collisions == 0
    assert f.dropped == {"max_series": 0, "max_text_length": 0}


def test_go_fixture_metadata() -> None:
    """Memstats families carry client_golang's type and help; the rest are untyped expvars."""
    f = flatten(body("vars.json"), cfg(maps=MAPS))
    assert f.meta["go_memstats_alloc_bytes_total"] == MetricMeta(
        "counter",
        "Total number of bytes allocated in heap until now, even if released already. "
        "Equals to /gc/heap/allocs:bytes.",
    )
    assert f.meta["go_memstats_heap_inuse_bytes"] == MetricMeta(
        "gauge",
        "Number of heap bytes that are in use. Equals to /memory/classes/heap/objects:bytes "
        "+ /memory/classes/heap/unused:bytes",
    )
    assert f.meta["go_memstats_last_gc_time_seconds"] == MetricMeta(
        "gauge", "Number of seconds since 1970 of last garbage collection."
    )
    assert f.meta["go_gc_duration_seconds"] == MetricMeta(
        "summary",
        "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.",
    )
    assert f.meta["requests"] == MetricMeta(
        "untyped", "Expvar 'requests' read from the app's expvar endpoint."
    )
    assert f.meta["caches"] == MetricMeta(
        "untyped", "Expvar map 'caches' read from the app's expvar endpoint, one series per key."
    )
    assert f.meta["leaky_sessions_keys"] == MetricMeta(
        "gauge",
        "Number of keys of expvar object 'leaky_sessions', too large or too deep to expand.",
    )
    assert {n: f.meta[n] for n in memstats.META} == memstats.META
    typed = {n for n, m in f.meta.items() if m.kind != "untyped"}
    assert typed - memstats.META.keys() == {"leaky_sessions_keys"}
    counters = {n for n, m in f.meta.items() if m.kind == "counter"}
    assert counters == {
        "go_memstats_alloc_bytes_total",
        "go_memstats_lookups_total",
        "go_memstats_mallocs_total",
        "go_memstats_frees_total",
        "go_gc_cycles_total",
        "go_gc_cycles_forced_gc_cycles_total",
    }
    # Every sample has its family's metadata.
    assert {family_of(dict(ls)["__name__"], f.meta) for ls in f.samples} == set(f.meta)


@pytest.mark.parametrize("name", ["vars", "vars_wrapped", "vars_nonfinite"])
def test_gc_summary_equals_go_readgcstats(name: str) -> None:
    """go_gc_duration_seconds equals what debug.ReadGCStats (client_golang's source) returned."""
    go = json.loads((GOAPP / f"{name}.gcstats.json").read_text())
    f = flatten(body(f"{name}.json"), cfg())
    quantiles = [
        one(f, "go_gc_duration_seconds", quantile=q) for q in ("0", "0.25", "0.5", "0.75", "1")
    ]
    assert quantiles == go["PauseQuantiles"]
    assert one(f, "go_gc_duration_seconds_sum") == go["PauseTotal"]
    assert one(f, "go_gc_duration_seconds_count") == go["NumGC"]
    assert one(f, "go_memstats_last_gc_time_seconds") == go["LastGC"]


def test_wrapped_pause_ring_gives_the_newest_pause() -> None:
    """After more than 256 collections the newest pause sits at (NumGC+255)%256."""
    doc = json.loads(body("vars_wrapped.json"))["memstats"]
    assert doc["NumGC"] == 303
    f = flatten(body("vars_wrapped.json"), cfg())
    assert one(f, "go_memstats_last_gc_pause_seconds") == doc["PauseNs"][46] / 1e9
    assert one(f, "go_gc_cycles_total") == 303.0


def test_go_nonfinite_floats_pass_through() -> None:
    """Go prints a NaN or infinite expvar.Float as a bare NaN/+Inf: they pass through as such."""
    raw = body("vars_nonfinite.json")
    assert b'"hit_ratio": NaN,' in raw
    assert b'"ratio": +Inf,' in raw
    f = flatten(raw, cfg(maps=MAPS))
    assert math.isnan(one(f, "hit_ratio"))
    assert one(f, "caches", cache="ratio") == math.inf
    assert one(f, "caches", cache="orders") == 50.0


def test_go_fixture_without_map_config_flattens_maps_by_name() -> None:
    """Unconfigured expvar maps are objects like any other: keys joined with _, sanitized."""
    f = flatten(body("vars.json"), cfg())
    got = samples(f)
    assert got["caches_orders", ()] == 42.0
    assert got["pool_db_utilization", ()] == 0.2
    assert got["http_requests_by_code_200", ()] == 900.0
    assert ("caches", (("cache", "orders"),)) not in got


# -- values ---------------------------------------------------------------------------------


def test_scalars_bools_null_arrays_and_strings() -> None:
    """Numbers are samples, bools 0/1; null, arrays and (by default) strings are skipped."""
    f = flat({"n": 3, "x": -1.5, "t": True, "f": False, "z": None, "a": [1, 2], "s": "hi"})
    assert samples(f) == {("n", ()): 3.0, ("x", ()): -1.5, ("t", ()): 1.0, ("f", ()): 0.0}


def test_strings_as_info() -> None:
    """With strings: info a string becomes <name>_info{value=...} = 1, keyed by sample name."""
    f = flat({"version": "1.4.2", "build": {"rev": "abc"}}, strings="info")
    assert samples(f) == {
        ("build_rev_info", (("value", "abc"),)): 1.0,
        ("version_info", (("value", "1.4.2"),)): 1.0,
    }
    assert f.meta["version_info"] == MetricMeta(
        "info", "Expvar string 'version' read from the app's expvar endpoint, as a label."
    )


def test_huge_numbers() -> None:
    """Numbers beyond a double become +-Inf as Go parses them; uint64 values keep their size."""
    raw = (
        b'{"big": 1e999, "neg": -1e999, "digits": 1' + b"0" * 400 + b', "u": 18446744073709551615}'
    )
    f = flat(raw)
    assert samples(f) == {
        ("big", ()): math.inf,
        ("neg", ()): -math.inf,
        ("digits", ()): math.inf,
        ("u", ()): 18446744073709551615.0,
    }


def test_numbers_read_alike_whatever_their_length() -> None:
    """Short values are read from a copy, long ones peeked at: the same values either way."""
    n64, n65 = "1" + "0" * 63, "1" + "0" * 64  # 64 and 65 bytes
    raw = (
        f'{{"a": {n64}, "b": {n65}, "c": -0.5, "d": true, "e": false, "f": "7", '
        f'"g": "{"7" * 70}", "h": null}}'
    ).encode()
    assert samples(flat(raw)) == {
        ("a", ()): float(n64),
        ("b", ()): float(n65),
        ("c", ()): -0.5,
        ("d", ()): 1.0,
        ("e", ()): 0.0,
    }


def test_memstats_negative_pause_is_not_gos_ring() -> None:
    """A negative duration in PauseNs is not Go's ring: no pause metrics, one warning."""
    ring = [5, -1] + [0] * 254
    f = flat({"memstats": {"NumGC": 2, "PauseNs": ring, "PauseTotalNs": 4}})
    assert samples(f) == {("go_gc_cycles_total", ()): 2.0}
    assert f.warnings == (
        "memstats: PauseNs or PauseTotalNs missing or not Go's: GC pauses not exported",
    )


def test_sanitize() -> None:
    """Names keep [a-zA-Z0-9_]; anything else, colons included, becomes _; no leading digit."""
    assert sanitize("http.requests-by-code") == "http_requests_by_code"
    assert sanitize("9lives") == "_9lives"
    assert sanitize("a:b") == "a_b"
    assert sanitize("größe") == "gr__e"
    assert sanitize("") == "_"


def test_nested_names_and_odd_keys() -> None:
    """Nested keys join with _; digits may follow the first character."""
    f = flat({"db": {"pool-1": {"open": 2}, "": 1}, "5xx": 7})
    assert samples(f) == {("db_", ()): 1.0, ("db_pool_1_open", ()): 2.0, ("_5xx", ()): 7.0}


def test_memstats_not_shaped_like_go() -> None:
    """Memstats fields that are missing or of the wrong shape are skipped, the rest exported."""
    f = flat({"memstats": {"Alloc": 5, "Sys": "x", "NumGC": 2, "PauseNs": "x", "PauseTotalNs": 1}})
    assert samples(f) == {("go_memstats_alloc_bytes", ()): 5.0, ("go_gc_cycles_total", ()): 2.0}
    assert f.warnings == (
        "memstats: PauseNs or PauseTotalNs missing or not Go's: GC pauses not exported",
    )


def test_memstats_before_the_first_collection() -> None:
    """With NumGC 0 the summary is all zeros, as ReadGCStats gives it, and no last pause."""
    f = flat({"memstats": {"NumGC": 0, "PauseNs": [0] * 256, "PauseTotalNs": 0, "LastGC": 0}})
    assert samples(f) == {
        ("go_memstats_last_gc_time_seconds", ()): 0.0,
        ("go_gc_cycles_total", ()): 0.0,
        ("go_gc_duration_seconds", (("quantile", "0"),)): 0.0,
        ("go_gc_duration_seconds", (("quantile", "0.25"),)): 0.0,
        ("go_gc_duration_seconds", (("quantile", "0.5"),)): 0.0,
        ("go_gc_duration_seconds", (("quantile", "0.75"),)): 0.0,
        ("go_gc_duration_seconds", (("quantile", "1"),)): 0.0,
        ("go_gc_duration_seconds_sum", ()): 0.0,
        ("go_gc_duration_seconds_count", ()): 0.0,
    }
    assert f.warnings == ()


def test_warnings_are_capped() -> None:
    """At most 20 warnings are kept, then a count of the rest."""
    f = flat({f"m{i:02d}": {"a": 1, "b": 2} for i in range(30)}, max_depth=1)
    assert len(f.warnings) == 21
    assert f.warnings[-1] == "... and 10 more warnings"
    assert f.collapsed["max_depth"] == 30
    assert len(f.samples) == 30


# -- collisions -----------------------------------------------------------------------------


def test_collision_first_in_key_order_wins() -> None:
    """Two values mapping to one name: the first in sorted key order wins, the other is reported."""
    f = flat({"a.b": 1, "a": {"b": 2}})
    assert samples(f) == {("a_b", ()): 2.0}
    assert f.collisions == 1
    assert f.warnings == ("'a.b' maps to a_b, already taken by 'a.b': dropped",)


def test_own_prefix_and_memstats_names_are_reserved() -> None:
    """The app cannot publish leak_sidecar_* nor shadow a memstats family."""
    raw = body("vars.json").replace(
        b'"goroutines": 4', b'"go_memstats_alloc_bytes": 1, "leak_sidecar_up": 5'
    )
    f = flatten(raw, cfg())
    got = samples(f)
    assert got["go_memstats_alloc_bytes", ()] == 573848.0
    assert ("leak_sidecar_up", ()) not in got
    assert f.collisions == 2
    assert f.warnings[:2] == (
        "'go_memstats_alloc_bytes' maps to go_memstats_alloc_bytes, "
        "already taken by 'memstats': dropped",
        "'leak_sidecar_up' maps to leak_sidecar_up, "
        "already taken by 'leak_sidecar_* (reserved)': dropped",
    )


# -- caps -----------------------------------------------------------------------------------


def test_wide_object_becomes_keys() -> None:
    """An object with more keys than max_object_keys is counted, not expanded, at any depth."""
    f = flat({"a": {"m": {str(i): i for i in range(11)}, "n": 1}}, max_object_keys=10)
    assert samples(f) == {("a_m_keys", ()): 11.0, ("a_n", ()): 1.0}
    assert f.collapsed == {"max_object_keys": 1, "max_depth": 0}


def test_wide_top_level_is_an_error() -> None:
    """A top level wider than max_object_keys cannot be exported at all: a clear error."""
    with pytest.raises(ScrapeError) as info:
        flat({str(i): i for i in range(20)}, max_object_keys=10)
    assert info.value.reason == "too_many_keys"
    assert (
        str(info.value)
        == "expvar body has 20 top-level keys, more than scrape.max_object_keys (10)"
    )


def test_depth_cap() -> None:
    """An object at max_depth is counted, not expanded."""
    f = flat({"a": {"b": {"c": {"d": 1}, "e": 2}}}, max_depth=2)
    assert samples(f) == {("a_b_keys", ()): 2.0}
    assert f.collapsed == {"max_object_keys": 0, "max_depth": 1}
    assert f.warnings == ("'a.b' sits at scrape.max_depth (2): exported as a_b_keys = 2",)


def test_series_cap_keeps_memstats_first() -> None:
    """At most max_series samples: memstats and configured maps first, then keys in order."""
    f = flatten(body("vars.json"), cfg(max_series=39, maps=MAPS[:1]))
    got = samples(f)
    assert len(got) == 39  # 36 from memstats, 3 from caches
    assert got["caches", (("cache", "users"),)] == 7.0
    assert got["go_memstats_alloc_bytes", ()] == 573848.0
    assert ("requests", ()) not in got
    # Past the cap objects count their members without descending: build 4,
    # goroutines 1, hit_ratio 1, http.requests-by-code 3, leaky_sessions 1500,
    # load_average 1, pool 2, ready 1, requests 1.
    assert f.dropped["max_series"] == 4 + 1 + 1 + 3 + 1500 + 1 + 2 + 1 + 1


def test_text_length_cap() -> None:
    """Keys and (info) strings longer than max_text_length are skipped and counted."""
    long = "k" * 11
    f = flat(
        {long: 1, "ok": "v" * 11, "m": {long: 2, "x": 3}},
        max_text_length=10,
        strings="info",
        maps=[{"path": "m", "labels": ["key"]}],
    )
    assert samples(f) == {("m", (("key", "x"),)): 3.0}
    assert f.dropped == {"max_series": 0, "max_text_length": 3}


# -- whole-body errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"[1, 2]", "an array"),
        (b'"x"', "a string"),
        (b"12", "a number"),
        (b"null", "null"),
        (b"true", "a bool"),
    ],
)
def test_top_level_must_be_an_object(raw: bytes, kind: str) -> None:
    """Anything but an object at the top is a ScrapeError naming what came."""
    with pytest.raises(ScrapeError) as info:
        flatten(raw, cfg())
    assert info.value.reason == "not_object"
    assert str(info.value) == f"expected a JSON object at the top of the expvar body, got {kind}"


@pytest.mark.parametrize("raw", [b"", b"{", b'{"a": 1,}', b"\xff", b'{"a": NaN'])
def test_invalid_json(raw: bytes) -> None:
    """A body that is not JSON is a ScrapeError with reason invalid_json."""
    with pytest.raises(ScrapeError) as info:
        flatten(raw, cfg())
    assert info.value.reason == "invalid_json"
    assert str(info.value).startswith("expvar body is not valid JSON: ")


def test_nesting_beyond_the_decoder_is_an_error() -> None:
    """Nesting deeper than the decoder follows is a ScrapeError, not a crash."""
    with pytest.raises(ScrapeError) as info:
        flatten(b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", cfg())
    assert info.value.reason == "too_deep"
    assert str(info.value) == "expvar body nests deeper than the decoder can follow"


def test_invalid_utf8_in_a_member_skips_only_that_member() -> None:
    """A nested object with a key that is not UTF-8 is skipped; the rest is exported."""
    f = flatten(b'{"a": {"\xff": 1}, "b": 2}', cfg())
    assert samples(f) == {("b", ()): 2.0}
    # The decoder's own words follow (they change between msgspec releases): ours are pinned.
    (warning,) = f.warnings
    prefix = "'a': not decodable, skipped: "
    assert warning.startswith(prefix)
    assert len(warning) > len(prefix)


# -- configured maps ------------------------------------------------------------------------


def test_map_levels_and_mismatches() -> None:
    """Each level names one label; leaves must be numbers; what does not fit is reported."""
    f = flat(
        {"pool": {"db": {"active": 2, "note": "x"}, "bad": 3}},
        maps=[{"path": "pool", "labels": ["pool", "field"]}],
    )
    assert samples(f) == {("pool", (("field", "active"), ("pool", "db"))): 2.0}
    assert f.warnings == (
        "scrape.maps: 'pool' has 2 entries that do not fit labels ['pool', 'field']: ignored",
    )


def test_wide_map_level_becomes_keys_with_outer_labels() -> None:
    """A too-wide level of a configured map exports <name>_keys with the labels above it."""
    f = flat(
        {"sessions": {"eu": {str(i): 1 for i in range(5)}, "us": {"a": 1}}},
        maps=[{"path": "sessions", "labels": ["region", "id"], "name": "sess"}],
        max_object_keys=4,
    )
    assert samples(f) == {
        ("sess_keys", (("region", "eu"),)): 5.0,
        ("sess", (("id", "a"), ("region", "us"))): 1.0,
    }


def test_map_path_resolution() -> None:
    """A dotted path matches a key holding dots whole, or walks nested objects."""
    f = flat(
        {"a.b": {"x": 1}, "c": {"d": {"y": 2}}, "e": 3},
        maps=[
            {"path": "a.b", "labels": ["k"]},
            {"path": "c.d", "labels": ["k"]},
            {"path": "missing", "labels": ["k"]},
            {"path": "e", "labels": ["k"]},
        ],
    )
    assert samples(f) == {("a_b", (("k", "x"),)): 1.0, ("c_d", (("k", "y"),)): 2.0, ("e", ()): 3.0}
    assert f.warnings == (
        "scrape.maps: 'missing' is not in the expvar body",
        "scrape.maps: 'e' is not an object: exported as a plain value",
    )


_LABELS = (
    "expected a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __) "
    "for each of labels"
)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"path": "a", "labels": ["__x"]}, f"{_LABELS}, got '__x'"),
        ({"path": "a", "labels": ["a-b"]}, f"{_LABELS}, got 'a-b'"),
        ({"path": "a", "labels": ["k", "k"]}, "expected distinct label names, got ['k', 'k']"),
        (
            {"path": "a", "labels": ["k"], "name": "1x"},
            "expected a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) for name, got '1x'",
        ),
        ({"path": "", "labels": ["k"]}, "path: expected str of length >= 1, got ''"),
        ({"path": "a", "labels": []}, "labels: expected array of length >= 1, got []"),
    ],
)
def test_map_config_is_validated(entry: dict[str, Any], message: str) -> None:
    """Label names, metric names and paths of scrape.maps are checked at load."""
    with pytest.raises(ValidationError) as caught:
        MapConfig.validate(entry)
    assert Problem.of(caught.value, entry).line() == message


def test_map_paths_are_unique() -> None:
    """One path configured twice is a config error naming the paths."""
    with pytest.raises(ValidationError, match=re.escape("each path may be configured once")):
        cfg(maps=[{"path": "a", "labels": ["k"]}, {"path": "a", "labels": ["j"]}])


def test_family_of() -> None:
    """A summary's _sum and _count belong to it; other names are their own family."""
    meta = {"s": MetricMeta("summary", "h"), "c_total": MetricMeta("counter", "h")}
    assert family_of("s_sum", meta) == "s"
    assert family_of("s_count", meta) == "s"
    assert family_of("s", meta) == "s"
    assert family_of("c_total", meta) == "c_total"
    assert family_of("x_sum", meta) == "x_sum"


def test_docs_table_lists_every_memstats_mapping() -> None:
    """docs/scrape.md has one row per memstats field and derived metric, with its type."""
    text = DOCS.read_text()
    for f in memstats.FIELDS:
        assert f"| `{f.field}` | `{f.name}` | {f.kind} |" in text
    for name, m in memstats.DERIVED.items():
        assert f"`{name}` | {m.kind} |" in text


# -- properties -----------------------------------------------------------------------------

_KEYS = st.text(max_size=12) | st.sampled_from(
    ["", "a", "a.b", "a_b", "memstats", "go_memstats_alloc_bytes"]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(_KEYS, inner, max_size=8),
    max_leaves=60,
)
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_JSON, indent=st.sampled_from([None, 1]))
def test_count_members_equals_len(doc: Any, indent: int | None) -> None:
    """For any JSON container, count_members equals the decoded length."""
    if not isinstance(doc, list | dict):
        doc = [doc]
    raw = json.dumps(doc, indent=indent, ensure_ascii=False).encode()
    assert count_members(raw) == len(doc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=_JSON,
    max_keys=st.integers(1, 6),
    max_depth=st.integers(1, 4),
    max_series=st.integers(1, 30),
    strings=st.sampled_from(["skip", "info"]),
)
def test_any_json_flattens_within_caps(
    doc: Any, max_keys: int, max_depth: int, max_series: int, strings: str
) -> None:
    """Any JSON value flattens within every cap; only a non-object or too wide top level raises."""
    c = cfg(
        max_object_keys=max_keys,
        max_depth=max_depth,
        max_series=max_series,
        strings=strings,
        max_text_length=20,
        maps=[{"path": "a", "labels": ["k"]}],
    )
    raw = json.dumps(doc, ensure_ascii=False).encode()
    if not isinstance(doc, dict) or len(doc) > max_keys:
        with pytest.raises(ScrapeError) as info:
            flatten(raw, c)
        assert info.value.reason == ("not_object" if not isinstance(doc, dict) else "too_many_keys")
        return
    f = flatten(raw, c)
    assert len(f.samples) <= max_series
    for labels in f.samples:
        assert _NAME.match(dict(labels)["__name__"])
        assert all(len(v) <= 20 for k, v in labels if k != "__name__")
        assert family_of(dict(labels)["__name__"], f.meta) in f.meta
    assert len(f.warnings) <= 21


@settings(max_examples=100, deadline=None)
@given(text=st.text(min_size=1, max_size=200), n=st.integers(0, 2000))
def test_hostile_strings_and_depth_never_crash(text: str, n: int) -> None:
    """Odd unicode, huge strings and deep nesting give samples or a ScrapeError, never a crash."""
    raw = json.dumps({text: text * 50, "d": json.loads("[" * (n % 400) + "]" * (n % 400) or "0")})
    f = flatten(raw.encode(), cfg(strings="info"))
    assert len(f.samples) <= 2
