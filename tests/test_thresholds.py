"""The lines a rule draws on a chart: thresholds against a constant or the memory limit."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from sidecar.web.thresholds import RefLine, chart_refs, rule_thresholds

PACK = Path(__file__).resolve().parent.parent / "rules" / "leaks.yml"
GIB = 1024**3


def test_the_pack_draws_heap_and_sys_against_the_limit_and_nothing_else() -> None:
    """OOMImminent's two comparisons give the heap and sys charts their threshold and the
    limit; rate, delta and prediction rules compare no charted series and draw nothing."""
    doc = yaml.safe_load(PACK.read_text())
    rules = [(r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"] if "alert" in r]
    assert chart_refs(rules, 3 * GIB) == {
        "go_memstats_heap_inuse_bytes": (
            RefLine(0.8 * 3 * GIB, "threshold", "OOMImminent > 80% of the limit (2.58G)"),
            RefLine(3 * GIB, "limit", "memory limit 3.22G"),
        ),
        "go_memstats_sys_bytes": (
            RefLine(0.85 * 3 * GIB, "threshold", "OOMImminent > 85% of the limit (2.74G)"),
            RefLine(3 * GIB, "limit", "memory limit 3.22G"),
        ),
    }


@pytest.mark.parametrize("limit", [None, 0.0, math.nan, math.inf])
def test_without_a_known_limit_only_constant_thresholds_are_drawn(limit: float | None) -> None:
    """A share of an unknown (or nonsense) limit has no height: left out; a constant stays."""
    rules = [
        ("Pool", "conn_pool_active > 95 unless leak_sidecar_target_up == 0"),
        ("Heap", "go_memstats_heap_inuse_bytes > 0.9 * leak_sidecar_app_memory_limit_bytes"),
    ]
    assert chart_refs(rules, limit) == {
        "conn_pool_active": (RefLine(95.0, "threshold", "Pool > 95"),)
    }


@pytest.mark.parametrize(
    ("expr", "found"),
    [
        ("x > 5", [("x", False, "R > 5", 5.0)]),
        ("5 < x", [("x", False, "R > 5", 5.0)]),
        ("(x) <= (2)", [("x", False, "R <= 2", 2.0)]),
        ("x >= leak_sidecar_app_memory_limit_bytes", [("x", True, "R >= 100% of the limit", 1.0)]),
        ("leak_sidecar_app_memory_limit_bytes * 0.5 < x",
         [("x", True, "R > 50% of the limit", 0.5)]),
        ("x / leak_sidecar_app_memory_limit_bytes > 0.9 and y > 1 or z < 2",
         [("x", True, "R > 90% of the limit", 0.9), ("y", False, "R > 1", 1.0),
          ("z", False, "R < 2", 2.0)]),
        ("x > bool 5", []),
        ("rate(x[5m]) > 5", []),
        ("sum(x) > 5", []),
        ("x > y", []),
        ("x == 5", []),
        ("x / leak_sidecar_app_memory_limit_bytes > leak_sidecar_app_memory_limit_bytes", []),
        ("sum(x", []),
    ],
)  # fmt: skip
def test_which_comparisons_give_a_line(
    expr: str, found: list[tuple[str, bool, str, float]]
) -> None:
    """Only a bare selector (or it over the limit) compared with a constant (or a share of
    the limit) gives a line; a bool comparison, a function or an unparsable text none."""
    got = [(m, per, line.label, line.value) for m, per, line in rule_thresholds("R", expr)]
    assert got == found
