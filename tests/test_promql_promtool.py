"""The promtool-format expression tests in tests/rules/expr_*.yml: each file passes the real
``promtool test rules`` and the sidecar's evaluator gives the same samples, bit for bit."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.promql import query_vector
from tests.promql_support import load, parse_labels

RULES = Path(__file__).parent / "rules"
FILES = sorted(RULES.glob("expr_*.yml"))
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def _ms(text: str) -> int:
    total, num = 0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit():
            num += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        total += int(num) * _UNITS[unit]
        num = ""
        i += len(unit)
    return total


def _cases(path: Path) -> list[tuple[dict[str, str], int, dict[str, Any]]]:
    doc = yaml.safe_load(path.read_text())
    out = []
    for group in doc["tests"]:
        series = {s["series"]: s["values"] for s in group["input_series"]}
        for case in group["promql_expr_test"]:
            out.append((series, _ms(group["interval"]), case))
    return out


def test_there_are_enough_cases() -> None:
    """The files hold at least 40 expression cases between them."""
    assert len(FILES) >= 5
    assert sum(len(_cases(p)) for p in FILES) >= 40


@pytest.mark.integration
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_promtool_passes_the_file(path: Path) -> None:
    """Real promtool agrees with every expected sample in the file."""
    result = subprocess.run(
        ["promtool", "test", "rules", path.name],
        cwd=RULES,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_sidecar_evaluates_the_file_identically(path: Path) -> None:
    """The embedded evaluator returns exactly the samples promtool expects."""
    failures = []
    for series, interval, case in _cases(path):
        store = load(series, interval)
        got = {
            s.labels: s.value
            for s in query_vector(case["expr"], store, _ms(str(case["eval_time"])))
        }
        want = {parse_labels(s["labels"]): float(s["value"]) for s in case["exp_samples"] or []}
        if got != want:
            failures.append(f"{case['expr']} @ {case['eval_time']}: want {want}, got {got}")
    assert failures == []
