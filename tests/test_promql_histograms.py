"""histogram_quantile over classic buckets: Go's ParseFloat for ``le``, the error on two
histograms that differ only by name, and random histograms checked by real promtool.
(Prometheus's own cases and the corner cases are in tests/rules/expr_histogram.yml.)"""

from __future__ import annotations

import math
import random
import subprocess
from pathlib import Path

import pytest
from promql_support import load

from sidecar.rules.promql import PromQLError, compile_expr, query_vector
from sidecar.rules.promql.histograms import bucket_quantile, go_parse_float

# strconv.ParseFloat(s, 64) on go1.19.8 (what promtool 2.42 is built with); None = error.
GO_PARSE_FLOAT = {
    "1": 1.0, "1_000": 1000.0, "_1": None, "1e_5": None, "0x1p-2": 0.25, "0x1_0p0": 16.0,
    "0x1": None, "+Inf": math.inf, "inf": math.inf, "infinity": math.inf, "-INF": -math.inf,
    "+nan": None, "1e999": None, "1e-400": 0.0, ".5": 0.5, "5.": 5.0, "": None, "1e": None,
    "0x.8p1": 1.0, " 1": None, "1_": None, "-0": -0.0,
}  # fmt: skip


@pytest.mark.parametrize("text", list(GO_PARSE_FLOAT))
def test_le_is_read_as_go_reads_it(text: str) -> None:
    """An ``le`` value parses exactly when Go's ``strconv.ParseFloat`` parses it."""
    assert go_parse_float(text) == GO_PARSE_FLOAT[text]


def test_nan_le_is_read() -> None:
    """``le="NaN"`` parses (to NaN), as in Go."""
    got = go_parse_float("NaN")
    assert got is not None
    assert math.isnan(got)


def test_a_nan_bound_sorts_as_go_insertion_sort_leaves_it() -> None:
    """Up to 12 buckets Go sorts by insertion, which leaves a NaN bound where it stands."""
    assert bucket_quantile(0.5, [[1.0, 2.0], [math.nan, 1.0], [math.inf, 4.0]]) == 1.0
    assert math.isnan(bucket_quantile(0.5, [[1.0, 2.0], [math.inf, 4.0], [math.nan, 1.0]]))


def test_histograms_differing_only_by_name_collide() -> None:
    """Two histograms whose labels differ only in the name fail as in Prometheus."""
    store = load({'a_bucket{le="1"}': "1", 'a_bucket{le="+Inf"}': "2",
                  'b_bucket{le="1"}': "1", 'b_bucket{le="+Inf"}': "2"})  # fmt: skip
    q = compile_expr('histogram_quantile(0.99, {__name__=~".+_bucket"})')
    with pytest.raises(PromQLError, match="vector cannot contain metrics with the same labelset"):
        q.evaluate(store, 0)


def test_native_histogram_functions_return_nothing_from_floats() -> None:
    """histogram_count, histogram_sum and histogram_fraction skip float samples, as 2.42 does."""
    store = load({'a_bucket{le="1"}': "1", "a_count": "3", "a_sum": "4"})
    for expr in ("histogram_count(a_count)", "histogram_sum(a_sum)",
                 "histogram_fraction(0, 1, a_bucket)"):  # fmt: skip
        assert query_vector(expr, store, 0) == []


_BOUNDS = [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60]


def _histograms(rng: random.Random) -> dict[str, str]:
    out = {}
    for h in range(12):
        bounds = sorted(rng.sample(_BOUNDS, rng.randint(1, 8)))
        if rng.random() < 0.3:
            bounds[0] = -bounds[0]
        les = [repr(float(b)) for b in bounds]
        if rng.random() < 0.9:
            les.append("+Inf")
        counts = [0.0] * 20
        rows = []
        for _ in les:
            step = [rng.choice([0, 1, 2, 3.5, 0.25, rng.uniform(0, 9)]) for _ in range(20)]
            if rng.random() < 0.2:  # a bucket that lags behind: counts not monotonic
                step = [-s for s in step]
            counts = [max(0.0, c + s) for c, s in zip(counts, step, strict=True)]
            rows.append(" ".join(repr(round(c, rng.randint(0, 4))) for c in counts))
        for le, row in zip(les, rows, strict=True):
            out[f'h_bucket{{h="{h}", le="{le}"}}'] = row
    return out


@pytest.mark.integration
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_promtool_agrees_on_random_histograms(seed: int, tmp_path: Path) -> None:
    """Quantiles of random (often non-monotonic) histograms, written from the evaluator,
    pass ``promtool test rules``."""
    rng = random.Random(seed)
    series = _histograms(rng)
    store = load(series, 60_000)
    lines = ["rule_files: []", "evaluation_interval: 1s", "tests:", "  - interval: 1m",
             "    input_series:"]  # fmt: skip
    for name, values in series.items():
        lines += [f"      - series: '{name}'", f"        values: '{values}'"]
    lines.append("    promql_expr_test:")
    cases = 0
    for q in (0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1, rng.random(), rng.random()):
        for minute in rng.sample(range(20), 3):
            expr = f"histogram_quantile({q!r}, h_bucket)"
            vec = [s for s in query_vector(expr, store, minute * 60_000) if not math.isnan(s.value)]
            expr = f"{expr} == {expr}"  # NaN is dropped: promtool cannot compare it
            lines += [f"      - expr: '{expr}'", f"        eval_time: {minute}m"]
            lines.append("        exp_samples:" if vec else "        exp_samples: []")
            for s in vec:
                labels = "{" + ", ".join(f'{k}="{v}"' for k, v in s.labels) + "}"
                value = repr(s.value) if math.isfinite(s.value) else ("-.inf", ".inf")[s.value > 0]
                lines += [f"          - labels: '{labels}'", f"            value: {value}"]
            cases += 1
    path = tmp_path / "hist.yml"
    path.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        ["promtool", "test", "rules", path.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert cases == 36
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
