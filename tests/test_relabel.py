"""``scrape.metric_relabel_configs``: config checks, Prometheus's semantics, and the scrape path.

The differential test against a real Prometheus is
``tests/integration/test_relabel_prometheus.py``; these pin the rest without one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from conftest import expvar_app, serving
from msgspec import ValidationError
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sidecar.core import config_relabel
from sidecar.core.config import ENV_TOKEN, Config, ScrapeConfig
from sidecar.core.config_load import load
from sidecar.core.config_relabel import RelabelConfig
from sidecar.core.errors import ConfigError
from sidecar.core.model import LabelSet, labelset
from sidecar.scrape.export import ExpvarCollector
from sidecar.scrape.flatten import flatten
from sidecar.scrape.relabel import CONFLICT, Relabeller
from sidecar.scrape.scraper import Scraper
from sidecar.store import Store

TO_PACK: list[dict[str, Any]] = [
    {"source_labels": ["__name__"], "regex": "myapp_(.+)_len", "target_label": "cache"},
    {
        "source_labels": ["__name__"],
        "regex": "myapp_.+_len",
        "target_label": "__name__",
        "replacement": "cache_keys_total",
    },
]


def relabeller(*configs: dict[str, Any]) -> Relabeller:
    return Relabeller([RelabelConfig.validate(c) for c in configs])


def ls(name: str, **labels: str) -> LabelSet:
    return labelset({"__name__": name, **labels})


def test_defaults_are_prometheus() -> None:
    """An empty config is Prometheus's default: replace, ';', '(.*)' anchored, '$1'."""
    with pytest.raises(ValidationError, match="requires 'target_label' value"):
        RelabelConfig.validate({})
    cfg = RelabelConfig.validate({"target_label": "x"})
    assert (cfg.action, cfg.separator, cfg.regex, cfg.replacement, cfg.modulus) == (
        "replace",
        ";",
        "(.*)",
        "$1",
        0,
    )
    assert cfg.compiled.match("anything\nat all") is None  # '.' is not '\n', as in Go


def test_action_is_case_insensitive_and_unknown_is_named() -> None:
    """'Keep' is keep, as Prometheus lowercases the action; an unknown one is quoted as Go does."""
    assert RelabelConfig.validate({"action": "Keep"}).action == "keep"
    with pytest.raises(ValidationError, match='unknown relabel action "explode"'):
        RelabelConfig.validate({"action": "explode"})


def test_regex_error_comes_first_and_is_re2() -> None:
    """A bad regex is refused at load with RE2's reason; backreferences are not RE2."""
    with pytest.raises(ValidationError, match="error parsing regexp"):
        RelabelConfig.validate({"regex": "(a"})
    with pytest.raises(ValidationError, match="error parsing regexp"):
        RelabelConfig.validate({"regex": "(a)\\1", "target_label": "x"})


def test_regexes_are_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Relabelling a scrape compiles nothing: the regexes come compiled with the config."""
    r = relabeller(*TO_PACK)

    def refuse(*_: object) -> None:
        raise AssertionError("compiled per sample")

    monkeypatch.setattr(config_relabel._re2()[0], "compile", refuse)
    out = r.apply({ls("myapp_sessions_len"): 3.0})
    assert out.samples == {ls("cache_keys_total", cache="sessions"): 3.0}


def test_maps_a_service_onto_the_pack() -> None:
    """myapp_sessions_len becomes cache_keys_total{cache="sessions"}; other names stay."""
    out = relabeller(*TO_PACK).apply({ls("myapp_sessions_len"): 5.0, ls("goroutines"): 9.0})
    assert out.samples == {
        ls("cache_keys_total", cache="sessions"): 5.0,
        ls("goroutines"): 9.0,
    }
    assert (out.dropped, out.conflicts) == (0, 0)


def test_hashmod_is_md5_low_bytes() -> None:
    """hashmod is the MD5's last 8 bytes, big-endian, modulo: Prometheus's known value."""
    # Prometheus's relabel_test.go: "baz" modulo 1000 is 976, "foo\nbar" is 734.
    r = relabeller(
        {"source_labels": ["a"], "modulus": 1000, "target_label": "h", "action": "hashmod"}
    )
    assert r.process(ls("m", a="baz")) == ls("m", a="baz", h="976")
    assert r.process(ls("m", a="foo\nbar")) == ls("m", a="foo\nbar", h="734")


def test_dropped_and_conflicting_series_are_counted_apart() -> None:
    """drop is configured, not counted as a conflict; a duplicate or nameless series is."""
    r = relabeller(
        {"source_labels": ["__name__"], "regex": "junk", "action": "drop"},
        {
            "source_labels": ["__name__"],
            "regex": "a|b",
            "target_label": "__name__",
            "replacement": "ab",
        },
        {
            "source_labels": ["__name__"],
            "regex": "nameless",
            "target_label": "__name__",
            "replacement": "",
        },
    )
    out = r.apply({ls("junk"): 1.0, ls("a"): 2.0, ls("b"): 3.0, ls("nameless", x="1"): 4.0})
    assert out.samples == {ls("ab"): 2.0}  # the first one wins, as in Prometheus
    assert (out.dropped, out.conflicts) == (1, 2)


def test_memo_follows_the_scrapes() -> None:
    """A label set gone from the scrape is forgotten: memory is one scrape's worth."""
    r = relabeller(*TO_PACK)
    r.apply({ls("myapp_a_len"): 1.0})
    r.apply({ls("myapp_b_len"): 1.0})
    assert list(r._memo) == [ls("myapp_b_len")]


@pytest.fixture
async def app_url() -> AsyncIterator[str]:
    doc = {"myapp": {"sessions_len": 12, "orders_len": 3}, "goroutines": 40}
    async with serving(expvar_app(doc)) as url:
        yield url


async def test_store_and_metrics_see_relabelled_names(app_url: str) -> None:
    """After a scrape the store and /metrics hold the pack's names, not the app's."""
    cfg = Config.validate(
        {
            "app": {"base_url": app_url},
            "scrape": {
                "metric_relabel_configs": [
                    *TO_PACK,
                    {"source_labels": ["__name__"], "regex": "myapp_orders_len", "action": "drop"},
                ]
            },
            "server": {"listen": "127.0.0.1:9120"},
        }
    )
    store = Store(retention_ms=3_600_000, max_series=1000)
    registry = CollectorRegistry()
    async with aiohttp.ClientSession() as session:
        scraper = Scraper(cfg, store, session, registry)
        await scraper.scrape_once()
    names = {dict(labels)["__name__"] for labels, _ in store.latest()}
    assert "cache_keys_total" in names
    assert not any(n.startswith("myapp_") for n in names)
    assert store.get(ls("cache_keys_total", cache="sessions")) is not None
    exported = CollectorRegistry()
    exported.register(ExpvarCollector(store, lambda: scraper.meta))
    text = generate_latest(exported).decode()
    assert 'cache_keys_total{cache="sessions"} 12.0' in text
    assert "myapp_" not in text
    sample = registry.get_sample_value
    assert sample("leak_sidecar_scrape_series_dropped_total", {"reason": CONFLICT}) == 0


DOC = Path(__file__).parent.parent / "docs" / "relabel.md"


def _doc_examples() -> list[tuple[str, str, str]]:
    blocks = re.findall(r"```(json|yaml|text)\n(.*?)```", DOC.read_text(), re.DOTALL)
    kinds = [kind for kind, _ in blocks]
    assert kinds == ["json", "yaml", "text"] * 3, kinds
    texts = [text for _, text in blocks]
    return [(texts[i], texts[i + 1], texts[i + 2]) for i in range(0, len(texts), 3)]


@pytest.mark.parametrize("example", _doc_examples(), ids=["checkout", "gateway", "indexer"])
def test_doc_examples_map_onto_the_pack(example: tuple[str, str, str]) -> None:
    """Each service in docs/relabel.md, flattened and relabelled, gives the series listed."""
    body, config, series = example
    scrape = ScrapeConfig.validate(yaml.safe_load(config)["scrape"])
    flat = flatten(bytearray(body.encode()), scrape)
    out = Relabeller(scrape.metric_relabel_configs).apply(flat.samples)
    assert out.conflicts == 0
    want = {
        labelset({"__name__": s.name, **s.labels}): s.value
        for family in text_string_to_metric_families(series)
        for s in family.samples
    }
    assert {k: out.samples.get(k) for k in want} == want


def test_config_error_names_the_step(tmp_path: Path) -> None:
    """A bad step fails loading with its index and Prometheus's reason, as the docs say."""
    path = tmp_path / "sidecar.yaml"
    path.write_text("scrape:\n  metric_relabel_configs:\n    - target_label: 1abc\n")
    with pytest.raises(ConfigError) as caught:
        load(path, {ENV_TOKEN: "t" * 32})
    assert (
        "scrape.metric_relabel_configs.0: \"1abc\" is invalid 'target_label' for replace action"
        in str(caught.value)
    )


def test_two_loads_of_one_config_are_equal() -> None:
    """The compiled regex is not part of equality: a reload sees no change that isn't there."""
    cfg = {"source_labels": ["a"], "regex": "x+", "target_label": "b"}
    one, two = RelabelConfig.validate(cfg), RelabelConfig.validate(cfg)
    two.__dict__["compiled"] = object()  # as if RE2's own cache had been evicted meanwhile
    assert one == two
    assert one != RelabelConfig.validate({**cfg, "regex": "y+"})
