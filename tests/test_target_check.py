"""``leak-sidecar check-target``: which rules can evaluate against a live app, after relabelling."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import expvar_app, serving

from sidecar.cli.target_check import check_target, missing_inputs
from sidecar.core.config import Config


@pytest.mark.parametrize(
    ("expr", "present", "lacks"),
    [
        ("delta(a[10m]) > 5 unless b == 0", {"a"}, []),
        ("delta(a[10m]) > 5 unless b == 0", {"b"}, ["a"]),
        ("(deriv(a[5m]) > 0) or (deriv(b[5m]) > 0)", {"b"}, []),
        ("(deriv(a[5m]) > 0) or (deriv(b[5m]) > 0)", set(), ["a", "b"]),
        ("avg_over_time(a[5m]) / (b > 0) > 0.9 and c", {"a", "c"}, ["b"]),
        ("sum by (x) (rate(a[5m:1m])) > 1", {"a"}, []),
    ],
)
def test_missing_inputs_follow_the_operators(
    expr: str, present: set[str], lacks: list[str]
) -> None:
    """`or` needs one side, `unless` only its left, every other operator both."""
    assert missing_inputs(expr, present) == lacks


@pytest.fixture
async def app_url() -> AsyncIterator[str]:
    async with serving(expvar_app({"myapp": {"sessions_len": 12}, "num_goroutine": 40})) as url:
        yield f"{url}/debug/vars"


def _config(relabel: list[dict[str, Any]]) -> Config:
    return Config.validate(
        {
            "scrape": {"metric_relabel_configs": relabel},
            "server": {"listen": "127.0.0.1:9120"},
        }
    )


async def test_relabelling_makes_pack_rules_ready(app_url: str) -> None:
    """The app's own names leave pack rules MISSING; mapped onto the pack's, they are OK."""
    out, err = io.StringIO(), io.StringIO()
    code = await _run(_config([]), app_url, out, err)
    assert code == 1
    assert "MISSING CacheKeysGrowing" in out.getvalue()
    assert "MISSING GoroutinesGrowing" in out.getvalue()
    rename = [
        {"source_labels": ["__name__"], "regex": "myapp_(.+)_len", "target_label": "cache"},
        {
            "source_labels": ["__name__"],
            "regex": "myapp_.+_len",
            "target_label": "__name__",
            "replacement": "cache_keys_total",
        },
        {
            "source_labels": ["__name__"],
            "regex": "num_goroutine",
            "target_label": "__name__",
            "replacement": "goroutines",
        },
    ]
    out = io.StringIO()
    code = await _run(_config(rename), app_url, out, err)
    assert "OK      CacheKeysGrowing" in out.getvalue()
    assert "OK      GoroutinesGrowing" in out.getvalue()
    assert "lacks conn_pool_active, conn_pool_max" in out.getvalue()
    assert code == 1


async def test_unreachable_target_is_exit_2(app_url: str) -> None:
    """A target that cannot be scraped is a usage error, said on stderr."""
    out, err = io.StringIO(), io.StringIO()
    assert await _run(_config([]), app_url.replace("/debug/vars", "/nope"), out, err) == 2
    assert "check-target:" in err.getvalue()


async def _run(cfg: Config, url: str, out: io.StringIO, err: io.StringIO) -> int:
    # check_target runs its own event loop (it is a CLI entry point): keep it off ours.
    return await asyncio.to_thread(check_target, cfg, url, out, err)
