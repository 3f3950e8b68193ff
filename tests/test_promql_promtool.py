"""The promtool-format expression tests in tests/rules/expr_*.yml, evaluated directly: the
sidecar's evaluator gives exactly the samples each case expects. (That real promtool
passes the same files, and ``test-rules`` too, is checked with every rule test file in
test_ruletest.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from promql_support import load

from sidecar.core.durations import parse_duration_ms
from sidecar.core.model import LabelSet
from sidecar.rules.promql import query_vector
from sidecar.rules.unittest.series import parse_metric

RULES = Path(__file__).parent / "rules"
FILES = sorted(RULES.glob("expr_*.yml"))


def _cases(path: Path) -> list[tuple[dict[str, str], int, dict[str, Any]]]:
    doc = yaml.safe_load(path.read_text())
    out = []
    for group in doc["tests"]:
        series = {s["series"]: s["values"] for s in group["input_series"]}
        for case in group["promql_expr_test"]:
            out.append((series, parse_duration_ms(group["interval"]), case))
    return out


def _subquery_step(path: Path) -> int:
    """promtool steps a subquery that names none by the file's evaluation_interval."""
    return parse_duration_ms(str(yaml.safe_load(path.read_text()).get("evaluation_interval", "1m")))


def test_there_are_enough_cases() -> None:
    """The files hold at least 40 expression cases between them."""
    assert len(FILES) >= 5
    assert sum(len(_cases(p)) for p in FILES) >= 40


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_sidecar_evaluates_the_file_identically(path: Path, range_kernels: str) -> None:
    """The embedded evaluator returns exactly the samples promtool expects, no more."""
    failures = []
    step = _subquery_step(path)
    for series, interval, case in _cases(path):
        store = load(series, interval)
        t = parse_duration_ms(str(case["eval_time"]))
        vec = query_vector(case["expr"], store, t, subquery_step_ms=step)
        got = sorted((s.labels, s.value) for s in vec)
        want: list[tuple[LabelSet, float]] = sorted(
            (parse_metric(s["labels"]), float(s["value"])) for s in case["exp_samples"] or []
        )
        if got != want:
            failures.append(f"{case['expr']} @ {case['eval_time']}: want {want}, got {got}")
    assert failures == []
