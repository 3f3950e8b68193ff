"""Differential check against real promtool: random float data (fixed seeds), expected
samples computed by the sidecar's evaluator, and promtool must agree to the last bit."""

from __future__ import annotations

import math
import random
import subprocess
from pathlib import Path

import pytest
from promql_support import load

from sidecar.core.model import LabelSet
from sidecar.rules.promql import query_vector

EXPRS = [
    "rate(cnt[2m])",
    "increase(cnt[5m])",
    "rate(cnt[3m] offset 1m)",
    "irate(cnt[1m])",
    "resets(cnt[5m])",
    "delta(mix[4m])",
    "idelta(mix[2m])",
    "deriv(pos[3m])",
    "deriv(mix[4m])",
    "predict_linear(pos[5m], 1234.5)",
    "predict_linear(mix[2m] offset 30s, 60)",
    "avg_over_time(pos[5m])",
    "avg_over_time(mix[7m])",
    "sum_over_time(mix[3m])",
    "stddev_over_time(pos[5m])",
    "stdvar_over_time(mix[5m])",
    "quantile_over_time(0.37, mix[5m])",
    "min_over_time(mix[2m])",
    "max_over_time(pos[2m])",
    "changes(step[5m])",
    "holt_winters(pos[3m], 0.2, 0.4)",
    "ln(pos)",
    "log2(pos)",
    "log10(pos)",
    "exp(pos / 1e9)",
    "pos ^ 1.7",
    "mix ^ 3",
    "sqrt(pos)",
    "round(mix, 0.1)",
    "mix % 3.3",
    "mix / on(i) pos",
    'count_values("v", step)',
    "sin(mix)",
    "cos(pos)",
    "tan(mix)",
    "asin(mix / 1000)",
    "acos(mix / 1000)",
    "atan(pos)",
    "sinh(mix / 100)",
    "cosh(mix / 100)",
    "tanh(mix / 300)",
    "asinh(mix)",
    "acosh(pos + 1)",
    "atanh(mix / 1001)",
    "mix atan2 on(i) pos",
    "max_over_time(rate(cnt[1m])[5m:30s])",
    "avg_over_time(mix[3m:20s])",
    "deriv(pos[4m:15s] offset 20s)",
    "predict_linear(mix[3m:25s], 100)",
    "stddev_over_time(deriv(pos[1m])[3m:10s])",
    "quantile_over_time(0.6, mix[2m:])",
    "rate(cnt[2m:7s] @ 500)",
    "max_over_time(max_over_time(mix[1m:10s])[3m:20s])",
    "sum_over_time(predict_linear(pos[1m] @ 400, 30)[2m:15s])",
    "max_over_time(predict_linear(mix[1m:10s] @ 450, 10)[1m:20s])",
]


def _values(rng: random.Random, lo: float, hi: float, n: int) -> str:
    return " ".join(repr(round(rng.uniform(lo, hi), rng.randint(0, 6))) for _ in range(n))


def _series(seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    counter = sorted(rng.uniform(0, 1e6) for _ in range(80))
    counter[40:] = [v - counter[40] / 2 for v in counter[40:]]  # a counter reset
    return {
        'pos{i="1"}': _values(rng, 0, 1e9, 80),
        'pos{i="2"}': _values(rng, 0, 10, 80),
        'mix{i="1"}': _values(rng, -1000, 1000, 80),
        'cnt{i="1"}': " ".join(repr(v) for v in counter),
        'step{i="1"}': " ".join(str(rng.choice([1, 2, 2, 3])) for _ in range(80)),
    }


def _yaml_float(v: float) -> str:
    if math.isinf(v):
        return ".inf" if v > 0 else "-.inf"
    return repr(v)


def _labels(ls: LabelSet) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in ls) + "}"


@pytest.mark.integration
@pytest.mark.parametrize("seed", [1, 2])
def test_promtool_agrees_with_the_evaluator_on_random_data(
    seed: int, tmp_path: Path, range_kernels: str
) -> None:
    """Every expected sample written from the evaluator passes ``promtool test rules``."""
    series = _series(seed)
    store = load(series, 10_000)
    rng = random.Random(seed * 7919)
    times = [rng.randint(100_000, 790_000) for _ in range(6)]
    lines = ["rule_files: []", "evaluation_interval: 1s", "tests:", "  - interval: 10s"]
    lines.append("    input_series:")
    for name, values in series.items():
        lines += [f"      - series: '{name}'", f"        values: '{values}'"]
    lines.append("    promql_expr_test:")
    cases = 0
    for expr in EXPRS:
        for t in times:
            # The default subquery step is the file's evaluation_interval.
            vec = query_vector(expr, store, t, subquery_step_ms=1000)
            if any(math.isnan(s.value) for s in vec):
                continue  # promtool cannot compare NaN
            lines += [f"      - expr: '{expr}'", f"        eval_time: {t}ms"]
            lines.append("        exp_samples:" if vec else "        exp_samples: []")
            for s in vec:
                lines += [
                    f"          - labels: '{_labels(s.labels)}'",
                    f"            value: {_yaml_float(s.value)}",
                ]
            cases += 1
    assert cases > len(EXPRS) * 4
    _promtool_passes(tmp_path / "diff.yml", lines)


def _promtool_passes(path: Path, lines: list[str]) -> None:
    """Write the unit-test file ``lines`` to ``path``; promtool must pass every case."""
    path.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        ["promtool", "test", "rules", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


LONG_EXPRS = [
    f"{fn}({name}[{rng}]{arg})"
    for name in ("heap", "gauge", "tiny", "neg")
    for fn, rng, arg in (
        ("deriv", "15m", ""),
        ("predict_linear", "10m", ", 3600"),
        ("avg_over_time", "15m", ""),
        ("sum_over_time", "15m", ""),
    )
]


@pytest.mark.integration
def test_promtool_agrees_on_long_windows_of_1s_samples(tmp_path: Path, range_kernels: str) -> None:
    """Windows of 600 to 900 samples of one sign (the C kernels, and the Python kernels'
    math.fsum paths) match promtool to the last bit (large, small and negative
    magnitudes; eval times off the sample grid, so predict_linear's x are not whole
    seconds)."""
    rng = random.Random(14)
    n = 1_000
    series = {
        'heap{i="1"}': [5e8 + 1234.5 * k + 5e4 * math.sin(k / 7) for k in range(n)],
        'gauge{i="1"}': [1e3 + 0.5 * k + 10 * math.sin(k / 13) for k in range(n)],
        'tiny{i="1"}': [1e-3 * (1 + rng.random()) for _ in range(n)],
        'neg{i="1"}': [-(2e3 + rng.uniform(0, 500)) for _ in range(n)],
    }
    text = {name: " ".join(repr(v) for v in vals) for name, vals in series.items()}
    store = load(text, 1_000)
    lines = ["rule_files: []", "evaluation_interval: 1s", "tests:", "  - interval: 1s"]
    lines.append("    input_series:")
    for name, values in text.items():
        lines += [f"      - series: '{name}'", f"        values: '{values}'"]
    lines.append("    promql_expr_test:")
    for expr in LONG_EXPRS:
        for t in (950_250, 999_000):
            vec = query_vector(expr, store, t)
            assert len(vec) == 1
            lines += [
                f"      - expr: '{expr}'",
                f"        eval_time: {t}ms",
                "        exp_samples:",
                f"          - labels: '{_labels(vec[0].labels)}'",
                f"            value: {_yaml_float(vec[0].value)}",
            ]
    _promtool_passes(tmp_path / "long.yml", lines)
