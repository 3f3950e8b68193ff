"""Real Go: rebuild tests/fixtures/goapp, regenerate its /debug/vars bodies, flatten them.

The committed bodies let the unit tests run without Go; this test proves they are still
what Go's expvar writes: fresh bodies from the local toolchain must decode and flatten to
exactly the same series, and their GC summary must equal ``debug.ReadGCStats``.
``UPDATE_FIXTURES=1`` copies the fresh bodies over the committed ones (then the literal
values in tests/test_expvar.py, which pin the committed bodies, need updating too).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from leakapp_support import go_build
from prometheus_client import CollectorRegistry, generate_latest

from sidecar.core.config import ScrapeConfig
from sidecar.scrape.export import ExpvarCollector
from sidecar.scrape.flatten import flatten
from sidecar.store import Store

pytestmark = pytest.mark.integration

GOAPP = Path(__file__).parent.parent / "fixtures" / "goapp"
BODIES = ("vars.json", "vars_wrapped.json", "vars_nonfinite.json")
CONFIG = ScrapeConfig.validate(
    {
        "maps": [
            {"path": "caches", "labels": ["cache"]},
            {"path": "pool", "labels": ["pool", "field"]},
            {"path": "http.requests-by-code", "labels": ["code"], "name": "http_requests"},
        ],
        "strings": "info",
    }
)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the Go program with a private cache, offline, and let it write its bodies."""
    tmp = tmp_path_factory.mktemp("goapp")
    binary = go_build(GOAPP, tmp, "goapp")
    out = tmp / "out"
    out.mkdir()
    subprocess.run([str(binary), str(out)], check=True, timeout=60, capture_output=True)
    if os.environ.get("UPDATE_FIXTURES") == "1":
        for name in BODIES:
            for file in (name, name.replace(".json", ".gcstats.json")):
                shutil.copyfile(out / file, GOAPP / file)
    return out


@pytest.mark.parametrize("name", BODIES)
def test_fresh_bodies_flatten_to_the_committed_series(fresh: Path, name: str) -> None:
    """A body Go writes today has exactly the series of the committed one."""
    new = flatten((fresh / name).read_bytes(), CONFIG)
    old = flatten((GOAPP / name).read_bytes(), CONFIG)
    assert sorted(new.samples) == sorted(old.samples)
    assert new.meta == old.meta
    assert new.warnings == old.warnings


@pytest.mark.parametrize("name", BODIES)
def test_fresh_gc_summary_equals_readgcstats(fresh: Path, name: str) -> None:
    """The summary rebuilt from a fresh memstats equals Go's own debug.ReadGCStats."""
    go = json.loads((fresh / name.replace(".json", ".gcstats.json")).read_text())
    f = flatten((fresh / name).read_bytes(), CONFIG)
    got = {
        dict(labels).get("quantile", dict(labels)["__name__"]): v
        for labels, v in f.samples.items()
        if dict(labels)["__name__"].startswith("go_gc_duration_seconds")
    }
    assert got == {
        "0": go["PauseQuantiles"][0],
        "0.25": go["PauseQuantiles"][1],
        "0.5": go["PauseQuantiles"][2],
        "0.75": go["PauseQuantiles"][3],
        "1": go["PauseQuantiles"][4],
        "go_gc_duration_seconds_sum": go["PauseTotal"],
        "go_gc_duration_seconds_count": float(go["NumGC"]),
    }


def test_the_exposition_of_a_real_go_payload_passes_promtool_check_metrics() -> None:
    """promtool check metrics finds nothing to say about what a real Go payload becomes."""
    registry = CollectorRegistry()
    f = flatten((GOAPP / "vars.json").read_bytes(), ScrapeConfig())
    store = Store(retention_ms=60_000, max_series=100_000)
    store.ingest(1_000, f.samples)
    registry.register(ExpvarCollector(store, lambda: f.meta))
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=generate_latest(registry),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
