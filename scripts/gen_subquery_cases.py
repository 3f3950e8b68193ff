"""Write tests/rules/expr_subquery.yml: subquery cases whose expected samples are promtool's.

Each case is first run through the real ``promtool test rules`` (Prometheus 2.42) with a
deliberately wrong expectation; the samples promtool reports as "got" become the
expected samples. Cases promtool cannot evaluate, or whose result holds a NaN (which
never compares equal), are left out and listed. The sidecar's evaluator is then checked
against the file, which is how tests/test_promql_promtool.py and test_ruletest.py run it.

    python scripts/gen_subquery_cases.py            # rewrite the file
    python scripts/gen_subquery_cases.py --check    # only compare, write nothing
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "rules" / "expr_subquery.yml"
EVAL_INTERVAL = "10s"


@dataclass
class Case:
    expr: str
    eval_time: str
    comment: str = ""


@dataclass
class Group:
    comment: str
    interval: str
    series: dict[str, str]
    cases: list[Case] = field(default_factory=list)

    def add(self, expr: str, eval_time: str, comment: str = "") -> None:
        self.cases.append(Case(expr, eval_time, comment))


# -- Prometheus 2.42's promql/testdata/subquery.test and at_modifier.test --------------


def _prometheus_groups() -> list[Group]:
    src = "from Prometheus 2.42 promql/testdata/subquery.test"
    g1 = Group(f"{src} (1st load).", "10s", {"metric": "1 2"})
    g1.add("sum_over_time(metric[50s:10s])", "10s", "Evaluation before 0s gets no sample.")
    g1.add("sum_over_time(metric[50s:5s])", "10s")
    g1.add("sum_over_time(metric[50s:10s])", "5m", "Every evaluation yields the last value, 2.")
    g1.add(
        "sum_over_time(metric[50s:10s])",
        "6m",
        "Out of the lookback from 5m10s (5m after the last sample): one step left, 5m10s.",
    )
    g1.add("rate(metric[20s:10s])", "10s")
    g1.add("rate(metric[20s:5s])", "20s")

    g2 = Group(
        f"{src} (2nd load).",
        "10s",
        {
            'http_requests{job="api-server", instance="1", group="production"}': (
                "0+20x1000 200+30x1000"
            ),
            'http_requests{job="api-server", instance="0", group="production"}': (
                "0+10x1000 100+30x1000"
            ),
            'http_requests{job="api-server", instance="0", group="canary"}': (
                "0+30x1000 300+80x1000"
            ),
            'http_requests{job="api-server", instance="1", group="canary"}': "0+40x2000",
        },
    )
    g2.add('rate(http_requests{group=~"pro.*"}[1m:10s])', "8000s")
    g2.add("avg_over_time(rate(http_requests[1m])[1m:1s])", "20000s")

    g3 = Group(
        f"{src} (3rd load).",
        "10s",
        {"metric1": "0+1x1000", "metric2": "0+2x1000", "metric3": "0+3x1000"},
    )
    g3.add("sum_over_time(metric1[30s:10s])", "1000s")
    g3.add("sum_over_time(metric1[30s:5s])", "1000s", "394*2 - 100: all but the last repeated.")
    g3.add("sum_over_time(metric1[30s:10s] offset 10s)", "1010s", "Offset aligned with the step.")
    for off in ("9s", "7s", "5s", "3s"):
        g3.add(f"sum_over_time(metric1[30s:10s] offset {off})", "1010s")
    g3.add("sum_over_time((metric1)[30s:10s] offset 3s)", "1010s")
    g3.add("rate(sum_over_time(metric1[30s:10s])[50s:10s])", "1000s", "Nested subqueries.")
    g3.add("rate(sum_over_time(metric2[30s:10s])[50s:10s])", "1000s")
    g3.add("rate(sum_over_time(metric3[30s:10s])[50s:10s])", "1000s")
    g3.add("rate(sum_over_time((metric1+metric2+metric3)[30s:10s])[30s:10s])", "1000s")

    fib = [1, 1]
    while len(fib) < 200:
        fib.append(fib[-1] + fib[-2])
    g4 = Group(
        f"{src} (4th load): Fibonacci, so that the rate is not constant.",
        "7s",
        {"metric": " ".join(str(v) for v in fib)},
    )
    g4.add("rate(metric[1m])", "80s", "Extrapolated from [3@21, 144@77].")
    g4.add("rate(metric[1m:10s])", "80s", "No extrapolation, [2@20, 144@80].")
    g4.add("min_over_time(metric[10s])", "20s", "Only one value between 10s and 20s, 2@14.")
    g4.add("min_over_time(metric[10s:10s])", "20s", "min(1@10, 2@20).")
    g4.add("min_over_time(rate(metric[5m])[20m:1m])", "20m")

    src = "from Prometheus 2.42 promql/testdata/at_modifier.test"
    g5 = Group(
        f"{src}, its subquery cases. The last case is at 1500s so that promtool loads the "
        "samples the @ times read.",
        "10s",
        {'metric{job="1"}': "0+1x1000", 'metric{job="2"}': "0+2x1000"},
    )
    g5.add('sum_over_time(metric{job="1"}[100s:1s] @ 100)', "25s", "10*(1+2+...+9) + 10.")
    g5.add('sum_over_time(metric{job="1"}[100s:1s] @ 100 offset 20s)', "25s")
    g5.add('sum_over_time(metric{job="1"}[100s:1s] offset 20s @ 100)', "25s")
    g5.add(
        'sum_over_time(sum_over_time(metric{job="1"}[100s] @ 100)[100s:25s] @ 50)',
        "100s",
        "The selector's @ makes the inner value independent of the subquery's time.",
    )
    g5.add(
        "sum_over_time(sum_over_time(sum_over_time("
        'metric{job="1"}[100s] @ 100)[100s:25s] @ 50)[3s:1s] @ 3000)',
        "0s",
    )
    g5.add(
        "sum_over_time(sum_over_time(sum_over_time("
        'metric{job="1"}[10s])[100s:25s] @ 50)[3s:1s] @ 200)',
        "0s",
        "The inner subquery's @ sets the selector's time.",
    )
    g5.add(
        "sum_over_time(sum_over_time(sum_over_time("
        'metric{job="1"}[10s])[100s:25s] @ 200)[3s:1s] @ 50)',
        "0s",
    )
    g5.add(
        "sum_over_time(sum_over_time(sum_over_time("
        'metric{job="1"}[20s])[20s:10s] offset 10s)[100s:25s] @ 1000)',
        "0s",
        "@ only on the outer subquery.",
    )
    g5.add("sum_over_time(minute(metric @ 1500)[100s:10s])", "0s")
    g5.add("sum_over_time(minute()[50m:1m] @ 6000)", "0s", "minute() of each step's time.")
    g5.add("sum_over_time(minute()[50m:1m] @ 6000 offset 5m)", "0s")
    g5.add("sum_over_time(vector(time())[100s:1s] @ 3000)", "0s", "time() is the step's time.")
    g5.add("sum_over_time(vector(time())[100s:1s] @ 3000 offset 600s)", "0s")
    g5.add('sum_over_time(timestamp(metric{job="1"} @ 10)[100s:10s] @ 3000)', "0s")
    g5.add('sum_over_time(timestamp(timestamp(metric{job="1"} @ 999))[10s:1s] @ 10)', "0s")
    g5.add(
        'sum_over_time(metric{job="1"}[100s:10s] @ 1500)',
        "1500s",
        "(not from the file) reads up to 1500s.",
    )
    g6 = Group(
        f"{src}, the cases without a subquery: @ on instant and range selectors, with "
        "offset, timestamp() and minute() of @ samples.",
        "10s",
        {'metric{job="1"}': "0+1x1000", 'metric{job="2"}': "0+2x1000"},
    )
    for expr, t in [
        ("metric @ 100", "10s"),
        ("metric @ 100 offset 50s", "10s"),
        ("metric offset 50s @ 100", "10s"),
        ("metric @ 0 offset -50s", "10s"),
        ("metric offset -50s @ 0", "10s"),
        ("-metric @ 100", "10s"),
        ("---metric @ 100", "10s"),
        ('sum_over_time(metric{job="1"}[100s] @ 100)', "25s"),
        ('sum_over_time(metric{job="1"}[100s] @ 100 offset 50s)', "25s"),
        ('sum_over_time(metric{job="1"}[100s] offset 50s @ 100)', "25s"),
        ('metric{job="1"} @ 50 + metric{job="1"} @ 100', "25s"),
        (
            'rate(metric{job="1"}[100s] @ 100) + '
            'label_replace(rate(metric{job="2"}[123s] @ 200), "job", "1", "", "")',
            "25s",
        ),
        (
            'sum_over_time(metric{job="1"}[100s] @ 100) + '
            'label_replace(sum_over_time(metric{job="2"}[100s] @ 100), "job", "1", "", "")',
            "25s",
        ),
        ("minute(metric @ 1500)", "10s"),
        ('timestamp(metric{job="1"} @ 10)', "10m"),
        ('timestamp(timestamp(metric{job="1"} @ 10))', "10m"),
        ('timestamp(timestamp(metric{job="1"} @ 10))', "15m"),
        ("metric", "1500s"),
    ]:
        g6.add(expr, t)
    g6.cases[-1].comment = "(not from the file) loads the samples up to 1500s."
    g7 = Group(f"{src}: millisecond precision.", "1ms", {"metric_ms": "0+1x10000"})
    g7.add("metric_ms @ 1.234", "100s")
    return [g1, g2, g3, g4, g5, g6, g7]


# -- hand-written -------------------------------------------------------------------


def _hand_groups() -> list[Group]:
    g = Group(
        "Alignment, default step, offset and @ on the subquery and inside it. "
        "x counts up by 1 every 10s; y by 2; the default step is evaluation_interval (10s).",
        "10s",
        {'x{j="a"}': "0+1x200", 'y{j="a"}': "0+2x200"},
    )
    g.add("sum_over_time(x[1m:20s])", "65s", "Steps at multiples of 20s: 20s, 40s, 60s.")
    g.add("sum_over_time(x[1m:20s])", "60s", "Both ends of the window are steps: 0s...60s.")
    g.add("count_over_time(x[1m:])", "65s", "No step: the evaluation interval.")
    g.add("count_over_time(x[1m:])", "60s")
    g.add("sum_over_time(x[45s:15s])", "100s", "Steps at 60, 75, 90 (and 55s..100s window).")
    g.add("sum_over_time(x[1m:7s] offset 13s)", "200s")
    g.add("sum_over_time(x[1m:7s] offset -13s)", "200s", "A negative offset.")
    g.add("sum_over_time((x offset 30s)[1m:20s])", "200s", "Offset inside.")
    g.add("sum_over_time((x offset 30s)[1m:20s] offset 30s)", "200s", "Offset inside and outside.")
    g.add("sum_over_time(x[1m:20s] @ 100)", "1500s", "@ on the subquery.")
    g.add("sum_over_time(x[1m:20s] @ 105 offset 5s)", "1500s")
    g.add("sum_over_time((x @ 50)[1m:20s])", "200s", "@ inside: every step reads 50s.")
    g.add("sum_over_time((x @ start())[1m:20s] @ 100)", "300s", "start() is the query's time.")
    g.add("sum_over_time((x @ end() offset 1m)[1m:20s] @ 100)", "300s")
    g.add("sum_over_time(x[1m:20s] @ end())", "300s")
    g.add("sum_over_time(x[1m:20s] @ start() offset 1m)", "300s")
    g.add("last_over_time(x[1m:25s])", "170s", "last_over_time keeps the name.")
    g.add("last_over_time(x[1m:25s] offset 20s)", "170s")
    g.add("sum_over_time(vector(time())[1m:20s])", "130s")
    g.add("sum_over_time(timestamp(x)[1m:15s])", "130s", "The samples' times, not the steps'.")
    g.add("sum_over_time((x - y)[1m:20s])", "130s", "Arithmetic inside.")
    g.add("count_over_time((x > 10)[1m:10s])", "70s", "A filter inside: fewer points.")
    g.add("sum_over_time((x > bool 10)[1m:10s])", "70s")
    g.add(
        'sum_over_time(label_replace(x, "k", "$1", "j", "(.*)")[30s:10s])',
        "70s",
        "Relabelling inside.",
    )
    g.add("max_over_time(sum_over_time(x[30s:10s])[1m:20s])", "200s", "Nested.")
    g.add("max_over_time(sum_over_time(x[30s:10s] offset 10s)[1m:20s] offset 20s)", "200s")
    g.add("sum_over_time(sum_over_time(sum_over_time(x[20s:10s])[40s:20s])[1m:30s])", "300s")
    g.add("sum_over_time(count_over_time(x[1m:])[1m:])", "300s")
    g.add("sum_over_time(x[1m:20s]) - sum_over_time(y[1m:20s]) / 2", "300s")
    g.add("sum_over_time(x[1m:20s] @ 100) + sum_over_time(x[1m:20s] @ 200)", "300s")
    g.add('sum(last_over_time({__name__=~"x|y"}[1m:20s]))', "300s", "Aggregated outside.")
    g.add('sum_over_time(sum by (j) ({__name__=~"x|y"})[1m:20s])', "300s", "Aggregated inside.")
    g.add(
        'absent_over_time(nothing{j="a"}[1m:10s])',
        "300s",
        "absent_over_time of a subquery has no labels.",
    )
    g.add("absent_over_time(x[1m:10s])", "300s")
    g.add("absent_over_time((x > 1000)[1m:10s])", "300s")
    g.add("present_over_time((x > 25)[1m:10s])", "300s")
    g.add("sum_over_time(x[1m:1s])", "1500s")

    lb = Group(
        "Lookback and staleness inside a subquery: a step sees a sample up to 5m old "
        "(exactly 5m included), a staleness marker ends the series at once.",
        "1m",
        {
            "sparse": "1 _x9 2 _x3 3",
            "st": "1 2 stale 4 5 6 _x10 7",
        },
    )
    lb.add("count_over_time(sparse[10m:1m])", "10m")
    lb.add("sum_over_time(sparse[10m:1m])", "10m")
    lb.add("count_over_time(sparse[10m:30s])", "10m")
    lb.add("count_over_time(sparse[20m:1m])", "20m")
    lb.add("last_over_time(sparse[3m:1m])", "9m")
    lb.add("count_over_time(st[5m:1m])", "5m", "The stale step is skipped.")
    lb.add("sum_over_time(st[5m:30s])", "5m")
    lb.add("count_over_time(st[15m:1m])", "15m")
    lb.add("sum_over_time(st[15m:1m])", "16m")
    lb.add("count_over_time(st[15m:])", "16m")
    lb.add("changes(st[15m:1m])", "16m")
    lb.add("absent_over_time(st[2m:1m])", "13m")
    lb.add("absent_over_time(st[2m:1m])", "12m")
    lb.add("count_over_time(st[1m:1m])", "20m")

    fn = Group(
        "Range functions over subqueries: counters with a reset, extrapolation to the "
        "window's edges (rate's window is the subquery's range), deriv, predict_linear "
        "(intercept at the evaluation time), holt_winters, quantile_over_time.",
        "15s",
        {
            'req{p="1"}': "0+7x20 3+5x20",
            'req{p="2"}': "5+3x40",
            'temp{p="1"}': "20 21.5 19.25 22 23.75 18.5 20.25 24 22.5 21 19.5 23 25.25 24.5 22 21",
        },
    )
    for f in ("rate", "increase", "delta", "irate", "idelta", "resets", "changes", "deriv"):
        fn.add(f"{f}(req[3m:30s])", "5m")
    fn.add("rate(req[3m:1m] offset 1m)", "5m")
    fn.add("rate(req[2m:20s])", "6m")
    fn.add("increase(req[5m:45s])", "7m30s")
    fn.add("rate(rate(req[1m])[3m:30s])", "8m")
    fn.add("deriv(temp[2m:15s])", "3m")
    fn.add("predict_linear(temp[2m:15s], 60)", "3m")
    fn.add("predict_linear(temp[2m:20s], 120)", "3m10s")
    fn.add("holt_winters(temp[3m:15s], 0.5, 0.5)", "4m")
    fn.add("quantile_over_time(0.25, temp[3m:15s])", "4m")
    fn.add("quantile_over_time(0.9, temp[3m:30s])", "4m")
    fn.add("stddev_over_time(temp[3m:15s])", "4m")
    fn.add("stdvar_over_time(temp[3m:15s])", "4m")
    fn.add("avg_over_time(temp[3m:15s])", "4m")
    fn.add("min_over_time(temp[3m:15s])", "4m")
    fn.add("max_over_time(temp[3m:15s])", "4m")
    fn.add("avg_over_time(deriv(temp[1m])[2m:15s])", "4m")
    fn.add("max_over_time(irate(req[1m])[5m:])", "10m")
    fn.add("sum_over_time(rate(req[1m])[5m:])", "10m")

    sl = Group(
        "2.42's sliding @ windows: a call evaluated at every step (predict_linear, or an "
        "argument that varies with the step) over a range or subquery with @, inside a "
        "subquery, has its window slid by the step's distance from the subquery's first "
        "step, and its selectors read only the samples the unslid window holds.",
        "10s",
        {
            'm{j="1"}': "0+1x120",
            'm{j="2"}': "5 3 8 1 9 2 7 4 6 0 5 3 8 1 9 2 7 4 6 0",
            "c": "0+3x120",
        },
    )
    sl.add(
        "sum_over_time(predict_linear(m[30s] @ 100, 0)[30s:10s])",
        "300s",
        "Windows end at 100s, 110s, 120s, 130s over the samples of [70s, 100s]: the last has one.",
    )
    sl.add("sum_over_time(predict_linear(m[30s] @ 100, 0)[30s:10s] @ 200)", "300s")
    sl.add("sum_over_time(quantile_over_time(scalar(c) / 1000, m[1m] @ 150)[40s:10s])", "300s")
    sl.add("max_over_time((rate(c[1m] @ 100) + time() * 0)[1m:15s])", "500s")
    sl.add(
        "sum_over_time(holt_winters(m[1m] @ 100, 0.5, 0.5)[40s:10s])",
        "300s",
        "Literal arguments: evaluated once, no sliding.",
    )
    sl.add(
        "last_over_time(predict_linear(c[30s:15s] @ 300, 10)[30s:15s] offset 10s)",
        "565s",
        "A subquery with @ as the argument: its selectors see nothing after 300s.",
    )
    sl.add("rate(predict_linear(c[1m:20s] @ 300, 10)[90s:10s] @ 600)", "430s")
    sl.add(
        "sum_over_time(predict_linear((m offset 7s)[1m:15s] @ end() offset 30s, 10)[40s:10s])",
        "700s",
    )
    sl.add(
        "sum_over_time(predict_linear(sum_over_time(c[20s:5s] offset 5s)[1m:15s] @ 400, 10)"
        "[1m:20s])",
        "800s",
    )
    sl.add("count_over_time(m[10s:10s])", "1200s", "(the latest time: loads every sample)")
    ed = Group(
        "Edges: steps before time 0 (time() is negative there), a step longer than the "
        "range, subqueries under scalar(), timestamp(), count_values, topk, group_left, "
        "bool and set operators, absent_over_time with @, absent() inside.",
        "10s",
        {
            'x{a="1"}': "1 2 3 4 5 6 7 8 9 10",
            'x{a="2"}': "10 20 30 _ _ _ _ 80 90 100",
            'y{a="1",b="z"}': "3x9",
        },
    )
    for expr, t in [
        ("sum_over_time(vector(time())[2m:1m])", "30s"),
        ("sum_over_time(vector(time())[5m:1m])", "0s"),
        ("count_over_time(vector(time())[5m:1m] offset 3m)", "1m"),
        ("sum_over_time(vector(time())[5m:1m] @ 0)", "1m"),
        ("count_over_time(x[10s:1m])", "50s"),
        ("count_over_time(x[10s:1m])", "60s"),
        ("count_over_time(x[59s:1m])", "119s"),
        ('scalar(max_over_time(x{a="1"}[1m:10s]))', "90s"),
        ("timestamp(max_over_time(x[1m:10s]))", "90s"),
        ('count_values("v", count_over_time(x[1m:10s]))', "90s"),
        ("topk(1, max_over_time(x[1m:10s]))", "90s"),
        ("max_over_time(x[1m:10s]) * on(a) group_left(b) y", "90s"),
        ("sum by (a) (rate(x[1m:10s])) > bool 0.01", "90s"),
        ("max_over_time(x[1m:10s]) unless min_over_time(x[1m:10s]) > 50", "90s"),
        ('absent_over_time(x{a="2"}[20s:10s] @ 50)', "90s"),
        ('sum_over_time((x{a="1"} @ start() - x{a="1"})[1m:10s])', "90s"),
        ("sum_over_time(x[30s:10s] offset 1m @ 120)", "30s"),
        ("quantile_over_time(0.5, x[2m:7s])", "95s"),
        ("changes(vector(time() % 30 > bool 10)[2m:5s])", "2m"),
        ("resets(vector(time() % 40)[3m:10s])", "3m"),
        ("max_over_time(absent(nope)[1m:10s])", "90s"),
        ("max_over_time(absent_over_time(nope[30s])[1m:10s])", "90s"),
        ("count_over_time(x[1m:10s])", "9m"),
        ("count_over_time(x[10m:10s])", "9m"),
    ]:
        ed.add(expr, t)
    ap = Group(
        "2.42 takes an aggregation as the same at every step when its expression reads only "
        "@ times, parameter unseen: inside a subquery the parameter is taken at the "
        "subquery's first step, for every step.",
        "10s",
        {'x{a="1"}': "1+1x30", 'x{a="2"}': "5+2x30", 'x{a="3"}': "20-1x30", "k": "0+0.1x30"},
    )
    for expr in [
        "sum_over_time(topk(scalar(k), x @ 100)[1m:10s])",
        "sum_over_time(quantile(scalar(k) / 3, x @ 100)[1m:10s])",
        "sum_over_time(count(topk(scalar(k), x @ 100))[1m:10s])",
        "sum_over_time(topk(scalar(k), x)[1m:10s])",
        "sum_over_time(topk(scalar(k), x @ 100)[1m:10s] @ 150)",
        "sum_over_time(sum_over_time(topk(scalar(k), x @ 100)[30s:10s])[1m:10s])",
        "sum_over_time((topk(scalar(k), x @ 100) + 0)[1m:10s])",
        "sum_over_time(bottomk(scalar(k), x @ 100)[1m:10s] offset 30s)",
    ]:
        ap.add(expr, "200s")
    ap.add('count_over_time(count_values("v", x @ 100)[1m:10s])', "290s")
    return [g, lb, fn, sl, ed, ap]


# -- generated -----------------------------------------------------------------------


def _values(rng: random.Random, lo: float, hi: float, n: int) -> str:
    return " ".join(repr(round(rng.uniform(lo, hi), rng.randint(0, 4))) for _ in range(n))


def _generated_groups(seed: int, n_cases: int) -> list[Group]:
    rng = random.Random(seed)
    counter = sorted(round(rng.uniform(0, 1e5), 2) for _ in range(60))
    counter[30:] = [round(v - counter[30] * 0.9, 2) for v in counter[30:]]
    series = {
        'g{i="1"}': _values(rng, -100, 100, 60),
        'g{i="2"}': _values(rng, 0, 1e6, 60),
        'c{i="1"}': " ".join(repr(v) for v in counter),
        'n{i="1"}': " ".join(str(rng.randint(0, 9)) for _ in range(60)),
        'n{i="2"}': " ".join(str(rng.randint(0, 9)) for _ in range(60)),
    }
    inners = [
        "g",
        "c",
        'g{i="2"}',
        "rate(c[1m])",
        "g * 2 - 1",
        "abs(g)",
        "deriv(g[2m])",
        "g offset 30s",
        "max_over_time(g[45s])",
        "sum(n)",
        "max by (i) (n)",
        "n > 4",
        "c - c offset 1m",
        "avg_over_time(g[1m:15s])",
        "rate(c[1m:20s])",
        "g @ 200",
    ]
    outers = [
        "sum_over_time({})",
        "avg_over_time({})",
        "max_over_time({})",
        "min_over_time({})",
        "count_over_time({})",
        "last_over_time({})",
        "stddev_over_time({})",
        "stdvar_over_time({})",
        "rate({})",
        "increase({})",
        "delta({})",
        "irate({})",
        "idelta({})",
        "deriv({})",
        "changes({})",
        "resets({})",
        "quantile_over_time(0.3, {})",
        "predict_linear({}, 90)",
        "holt_winters({}, 0.3, 0.6)",
    ]
    ranges = ["1m", "90s", "2m30s", "5m"]
    steps = ["10s", "15s", "25s", "1m", "", "7s"]
    mods = ["", "", " offset 20s", " offset -15s", " @ 300", " offset 1m @ 400"]
    group = Group(
        f"Generated (seed {seed}): random floats (g), a counter with a reset (c), small "
        "integers (n, so that aggregations do not depend on the order promtool loads "
        "series in); every function over subqueries of varied range, step, offset and @.",
        "15s",
        series,
    )
    seen = set()
    while len(group.cases) < n_cases:
        inner = rng.choice(inners)
        wrapped = inner if re.fullmatch(r"[a-z]+(\{[^}]*\})?", inner) else f"({inner})"
        sub = f"{wrapped}[{rng.choice(ranges)}:{rng.choice(steps)}]{rng.choice(mods)}"
        expr = rng.choice(outers).format(sub)
        t = f"{rng.randrange(150, 880, 5)}s"
        if (expr, t) in seen:
            continue
        seen.add((expr, t))
        group.add(expr, t)
    group.add("count_over_time(g[10s:10s])", "885s", "(the latest time: loads every sample)")
    return [group]


# -- promtool and the file --------------------------------------------------------------


def _yaml_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _group_lines(g: Group, expected: list[list[tuple[str, str]]] | None) -> list[str]:
    lines = [f"  # {line}" for line in _wrap(g.comment)]
    lines += [f"  - interval: {g.interval}", "    input_series:"]
    for name, values in g.series.items():
        lines += [f"      - series: {_yaml_str(name)}", f"        values: {_yaml_str(values)}"]
    lines.append("    promql_expr_test:")
    for i, c in enumerate(g.cases):
        if c.comment:
            lines += [f"      # {line}" for line in _wrap(c.comment)]
        lines += [f"      - expr: {_yaml_str(c.expr)}", f"        eval_time: {c.eval_time}"]
        if expected is None:
            lines.append("        exp_samples: [{labels: '{__never__=\"x\"}', value: 0}]")
            continue
        samples = expected[i]
        if not samples:
            lines.append("        exp_samples: []")
            continue
        lines.append("        exp_samples:")
        for labels, value in samples:
            lines += [f"          - labels: {_yaml_str(labels)}", f"            value: {value}"]
    return lines


def _wrap(text: str, width: int = 86) -> list[str]:
    out: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*out, line] if line else out


_BLOCK = re.compile(
    r'^    expr: (".*"), time: (\S+?),(?: err: (.*)|\n        exp: .*\n        got: (.*))$',
    re.MULTILINE,
)
_SAMPLE = re.compile(r"(\{.*?\}) (\S+?)(?:, (?=\{)|$)")


def _yaml_float(text: str) -> str | None:
    """promtool prints Go's shortest 'E' form; None for NaN. The YAML form reads the same
    in Go and in PyYAML (a mantissa with a dot)."""
    v = float(text)
    if math.isnan(v):
        return None
    if math.isinf(v):
        return ".inf" if v > 0 else "-.inf"
    r = repr(v)
    if "e" in r and "." not in r.split("e")[0]:
        r = r.replace("e", ".0e")
    return r


def _promtool(text: str) -> str:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cases.yml"
        path.write_text(text)
        # promtool from PATH, as the tests run it; the arguments are fixed.
        proc = subprocess.run(  # noqa: S603
            ["promtool", "test", "rules", path.name],  # noqa: S607
            cwd=d,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    return proc.stdout + proc.stderr


def _header() -> list[str]:
    return [
        "# Subqueries `expr[range:step]`, to the last bit: steps aligned to multiples of the step,",
        "# the default step (the evaluation interval), offset and @ on the subquery and inside",
        "# it, lookback and staleness at each step, range functions of subqueries, nested",
        "# subqueries. The first groups are Prometheus 2.42's own promql/testdata cases in",
        "# promtool's format; the rest hand-written and generated. Every expected sample is",
        "# the one promtool 2.42 computed: written by scripts/gen_subquery_cases.py.",
        "",
        "rule_files: []",
        "",
        "# Also the step of a subquery that names none. Every group's latest eval_time is a",
        "# multiple of it, so promtool loads every sample the cases read.",
        f"evaluation_interval: {EVAL_INTERVAL}",
        "",
        "tests:",
    ]


def _run_groups(groups: list[Group]) -> list[list[list[tuple[str, str]] | None]]:
    """promtool's result for each case: its samples, or None (an error or a NaN)."""
    text = "\n".join(
        ["rule_files: []", f"evaluation_interval: {EVAL_INTERVAL}", "tests:"]
        + [line for g in groups for line in _group_lines(g, None)]
    )
    out = _promtool(text + "\n")
    blocks = _BLOCK.findall(out)
    n = sum(len(g.cases) for g in groups)
    if len(blocks) != n:
        sys.exit(f"promtool reported {len(blocks)} results for {n} cases:\n{out[-3000:]}")
    results: list[list[list[tuple[str, str]] | None]] = []
    it = iter(blocks)
    for g in groups:
        res: list[list[tuple[str, str]] | None] = []
        for c in g.cases:
            expr, _, err, got = next(it)
            assert json.loads(expr) == c.expr, (expr, c.expr)
            if err:
                print(f"promtool error, left out: {c.expr} @ {c.eval_time}: {err}")
                res.append(None)
                continue
            samples = []
            for labels, value in [] if got == "nil" else _SAMPLE.findall(got):
                y = _yaml_float(value)
                if y is None:
                    print(f"NaN result, left out: {c.expr} @ {c.eval_time}")
                    samples = None
                    break
                samples.append((labels, y))
            res.append(samples)
        results.append(res)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only, write nothing")
    parser.add_argument("--generated", type=int, default=90, help="generated cases")
    args = parser.parse_args()
    groups = _prometheus_groups() + _hand_groups() + _generated_groups(42, args.generated)
    results = _run_groups(groups)
    lines = _header()
    kept = 0
    for g, res in zip(groups, results, strict=True):
        keep = [(c, r) for c, r in zip(g.cases, res, strict=True) if r is not None]
        g.cases = [c for c, _ in keep]
        lines += _group_lines(g, [r for _, r in keep if r is not None])
        lines.append("")
        kept += len(keep)
    text = "\n".join(lines)
    if not args.check:
        OUT.write_text(text)
    print(f"{kept} cases written to {OUT.relative_to(ROOT)}" if not args.check else kept)


if __name__ == "__main__":
    main()
