"""``test_rules``: rule unit tests in ``promtool test rules`` format, run on the embedded engine.

The same file must pass here and in promtool 2.42 (``cmd/promtool/unittest.go``), so its
procedure is followed exactly:

- the rule files (relative to the test file, globbed) load into fresh groups, ordered by
  ``group_eval_order`` (unlisted groups first, as promtool ranks them 0);
- every test group evaluates all groups at 0, ``evaluation_interval``, 2x... up to its
  latest ``eval_time``, loading the input samples up to each step just before it;
- alert checks at ``eval_time`` compare the *firing* alerts after the step at or before
  it, labels (without external labels) and annotations, exactly;
- expression checks run after the last step, on everything loaded, with exact float
  equality; a rule that fails to evaluate ends its test group with an error;
- failures print as promtool prints them, exit code 1.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from yaml.nodes import Node, ScalarNode

from sidecar.core.durations import format_duration_ms, go_duration, parse_duration_ms
from sidecar.core.errors import RuleError
from sidecar.core.model import LabelSet
from sidecar.gocompat.gofmt import go_format_e, go_labels, go_quote
from sidecar.gocompat.yamlnode import MAX_FILE_BYTES, Decoder, YamlSyntaxError, compose
from sidecar.rules.alerting import AlertingRule, AlertState
from sidecar.rules.engine import eval_group
from sidecar.rules.files import parse_rule_files
from sidecar.rules.groups import Group, build_groups
from sidecar.rules.promql import query_vector
from sidecar.rules.unittest.report import alerts_text
from sidecar.rules.unittest.series import MAX_POINTS, parse_metric, parse_series
from sidecar.store import Store

__all__ = ["MAX_STEPS", "test_rules"]

MAX_STEPS = 1_000_000
"""Evaluation steps one test group may take (latest eval_time / evaluation_interval)."""

_FILE = frozenset({"rule_files", "evaluation_interval", "group_eval_order", "tests"})
_GROUP = frozenset(
    {
        "interval",
        "input_series",
        "alert_rule_test",
        "promql_expr_test",
        "external_labels",
        "external_url",
        "name",
    }
)
_SERIES = frozenset({"series", "values"})
_ALERT_TEST = frozenset({"eval_time", "alertname", "exp_alerts"})
_ALERT = frozenset({"exp_labels", "exp_annotations"})
_EXPR_TEST = frozenset({"expr", "eval_time", "exp_samples"})
_SAMPLE = frozenset({"labels", "value"})


@dataclass
class _AlertCase:
    eval_ms: int
    alertname: str
    expected: list[tuple[dict[str, str], dict[str, str]]]


@dataclass
class _ExprCase:
    expr: str
    eval_ms: int
    samples: list[tuple[str, float]]


@dataclass
class _TestGroup:
    name: str = ""
    interval_ms: int = 0
    series: list[tuple[str, str]] = field(default_factory=list)
    alerts: list[_AlertCase] = field(default_factory=list)
    exprs: list[_ExprCase] = field(default_factory=list)
    external_labels: dict[str, str] = field(default_factory=dict)
    external_url: str = ""


class _Silent:
    """promtool runs the rule manager with a no-op logger: errors show in the report."""

    def warning(self, event: str, **facts: Any) -> None:
        """Drop it."""

    def error(self, event: str, **facts: Any) -> None:
        """Drop it."""


_SILENT = _Silent()


class _Errors(Exception):
    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


def _duration(dec: Decoder, node: Node | None) -> int:
    text = dec.string(node)
    # Absent or null is no duration; an explicit '' is Prometheus's "empty duration string".
    if not text and (dec.is_null(node) or not isinstance(node, ScalarNode)):
        return 0
    try:
        return parse_duration_ms(text)
    except ValueError as exc:
        raise _Errors([str(exc)]) from None


def _decode(text: str) -> tuple[list[str], int, list[str], list[_TestGroup]]:
    try:
        root = compose(text)
    except YamlSyntaxError as exc:
        raise _Errors([str(exc)]) from None
    dec = Decoder()
    top = dec.mapping(root, "main.unitTestFile", _FILE) if root is not None else {}
    rule_files = [dec.string(n) for n in dec.sequence(top.get("rule_files"), "[]string")]
    order = [dec.string(n) for n in dec.sequence(top.get("group_eval_order"), "[]string")]
    groups: list[_TestGroup] = []
    for gnode in dec.sequence(top.get("tests"), "[]main.testGroup"):
        g = dec.mapping(gnode, "main.testGroup", _GROUP)
        tg = _TestGroup(
            name=dec.string(g.get("name")),
            external_labels=dec.string_map(g.get("external_labels")),
            external_url=dec.string(g.get("external_url")),
        )
        for s in dec.sequence(g.get("input_series"), "[]main.series"):
            sm = dec.mapping(s, "main.series", _SERIES)
            tg.series.append((dec.string(sm.get("series")), dec.string(sm.get("values"))))
        for a in dec.sequence(g.get("alert_rule_test"), "[]main.alertTestCase"):
            am = dec.mapping(a, "main.alertTestCase", _ALERT_TEST)
            expected = []
            for e in dec.sequence(am.get("exp_alerts"), "[]main.alert"):
                em = dec.mapping(e, "main.alert", _ALERT)
                expected.append(
                    (
                        dec.string_map(em.get("exp_labels")),
                        dec.string_map(em.get("exp_annotations")),
                    )
                )
            tg.alerts.append(_AlertCase(0, dec.string(am.get("alertname")), expected))
            tg.alerts[-1].eval_ms = _duration(dec, am.get("eval_time"))
        for x in dec.sequence(g.get("promql_expr_test"), "[]main.promqlTestCase"):
            xm = dec.mapping(x, "main.promqlTestCase", _EXPR_TEST)
            samples = []
            for s in dec.sequence(xm.get("exp_samples"), "[]main.sample"):
                sm = dec.mapping(s, "main.sample", _SAMPLE)
                samples.append((dec.string(sm.get("labels")), dec.floating(sm.get("value"))))
            tg.exprs.append(_ExprCase(dec.string(xm.get("expr")), 0, samples))
            tg.exprs[-1].eval_ms = _duration(dec, xm.get("eval_time"))
        tg.interval_ms = _duration(dec, g.get("interval"))
        groups.append(tg)
    interval = _duration(dec, top.get("evaluation_interval"))
    if dec.errors:
        lines = "\n".join(f"  {e}" for e in dec.errors)
        raise _Errors([f"yaml: unmarshal errors:\n{lines}"])
    return rule_files, interval, order, groups


def _resolve(base: str, patterns: list[str], warn: TextIO) -> list[str]:
    files: list[str] = []
    for rf in patterns:
        path = os.path.join(base, rf) if rf and not os.path.isabs(rf) else rf
        matched = sorted(glob.glob(path))
        if not matched:
            print("  WARNING: no file match pattern", path, file=warn)
        files.extend(matched)
    return files


def _load_groups(
    files: list[str], tg: _TestGroup, order: dict[str, int], interval: int
) -> list[Group]:
    specs, errors = parse_rule_files(files)
    if errors:
        raise _Errors(errors)
    # promtool's groups default to the test group's `interval`; its subqueries step by
    # the file's `evaluation_interval` (the lazy loader's SubqueryInterval).
    groups = build_groups(
        specs, tg.interval_ms, tg.external_labels, tg.external_url, True, subquery_step_ms=interval
    )
    for g in groups:
        for rule in g.rules:
            if isinstance(rule, AlertingRule):
                rule.nil_manager_url = True  # promtool gives its rule manager no URL
    # promtool ranks unlisted groups 0; a stable sort keeps file order among equals.
    return sorted(groups, key=lambda g: order.get(g.spec.name, 0))


def _run_group(tg: _TestGroup, files: list[str], interval: int, order: dict[str, int]) -> list[str]:
    inputs: dict[LabelSet, list[tuple[int, float]]] = {}
    total = 0
    for series, values in tg.series:
        labels, vals = parse_series(series, values)
        total += len(vals)
        if total > MAX_POINTS:
            return [f"input series expand to more than {MAX_POINTS} values"]
        inputs[labels] = [(i * tg.interval_ms, v) for i, v in enumerate(vals) if v is not None]
    groups = _load_groups(files, tg, order, interval)
    for a in tg.alerts:
        if not a.alertname:
            where = f" (in TestGroup {tg.name})" if tg.name else ""
            return [
                "an item under alert_rule_test misses required attribute alertname at "
                f"eval_time {format_duration_ms(a.eval_ms)}{where}"
            ]
    max_t = max([a.eval_ms for a in tg.alerts] + [x.eval_ms for x in tg.exprs] + [0])
    if max_t // interval > MAX_STEPS:
        return [f"{max_t // interval} evaluation steps exceed the limit of {MAX_STEPS}"]
    store = Store(retention_ms=2**62, max_series=10_000_000)
    cursors = dict.fromkeys(inputs, 0)
    origins = {labels: f"input:{i}" for i, labels in enumerate(inputs)}
    alert_times = sorted({a.eval_ms for a in tg.alerts})
    errors: list[str] = []
    curr = 0
    for ts in range(0, max_t + 1, interval):
        for labels, points in inputs.items():
            i = cursors[labels]
            while i < len(points) and points[i][0] <= ts:
                store.ingest(points[i][0], {labels: points[i][1]}, origin=origins[labels])
                i += 1
            cursors[labels] = i
        eval_errors = []
        for g in groups:
            eval_group(g, store, ts, events=_SILENT)
            eval_errors += [
                f"    rule: {r.name}, time: {go_duration(ts)}, err: {r.last_error}"
                for r in g.rules
                if r.last_error
            ]
        if eval_errors:
            return errors + eval_errors
        while curr < len(alert_times) and ts <= alert_times[curr] < ts + interval:
            errors += _check_alerts(tg, groups, alert_times[curr])
            curr += 1
    for case in tg.exprs:
        errors += _check_expr(case, store, interval)
    return errors


def _check_alerts(tg: _TestGroup, groups: list[Group], t: int) -> list[str]:
    cases = [a for a in tg.alerts if a.eval_ms == t]
    names = {a.alertname for a in cases}
    got: dict[str, list[tuple[LabelSet, LabelSet]]] = {}
    for g in groups:
        for rule in g.rules:
            if isinstance(rule, AlertingRule) and rule.name in names:
                got.setdefault(rule.name, []).extend(
                    (a.labels, a.annotations)
                    for a in rule.active_alerts()
                    if a.state == AlertState.FIRING
                )
    errors = []
    for case in cases:
        exp = sorted(
            (
                tuple(sorted({**labels, "alertname": case.alertname}.items())),
                tuple(sorted(annotations.items())),
            )
            for labels, annotations in case.expected
        )
        have = sorted(got.get(case.alertname, []))
        if exp != have:
            name = f"    name: {tg.name},\n" if tg.name else ""
            errors.append(
                f"{name}    alertname: {case.alertname}, time: {format_duration_ms(t)}, \n"
                f"        exp:{alerts_text(exp)}, \n        got:{alerts_text(have)}"
            )
    return errors


def _check_expr(case: _ExprCase, store: Store, interval: int) -> list[str]:
    head = f"    expr: {go_quote(case.expr)}, time: {format_duration_ms(case.eval_ms)}"
    try:
        got = sorted(
            query_vector(case.expr, store, case.eval_ms, subquery_step_ms=interval),
            key=lambda s: s.labels,
        )
    except RuleError as exc:
        return [f"{head}, err: {exc.message}"]
    exp: list[tuple[LabelSet, float]] = []
    for text, value in case.samples:
        try:
            exp.append((parse_metric(text), value))
        except RuleError as exc:
            return [f"{head}, err: labels {go_quote(text)}: {exc.message}"]
    exp.sort(key=lambda s: s[0])
    # Exact equality, as Go's reflect.DeepEqual: NaN never equals NaN.
    same = len(exp) == len(got) and all(
        le == lg and ve == vg for (le, ve), (lg, vg) in zip(exp, got, strict=True)
    )
    if same:
        return []
    return [f"{head},\n        exp: {_samples_text(exp)}\n        got: {_samples_text(got)}"]


def _samples_text(samples: Sequence[tuple[LabelSet, float]]) -> str:
    if not samples:
        return "nil"
    return ", ".join(f"{go_labels(labels)} {go_format_e(v, upper=True)}" for labels, v in samples)


def _test_file(path: str, out: TextIO, err: TextIO) -> list[str]:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return [f"open {path}: {(exc.strerror or str(exc)).lower()}"]
    if len(data) > MAX_FILE_BYTES:
        return [f"{path}: larger than {MAX_FILE_BYTES} bytes"]
    try:
        rule_files, interval, order_list, groups = _decode(data.decode("utf-8", "replace"))
    except _Errors as exc:
        return exc.errors
    files = _resolve(os.path.dirname(path), rule_files, err)
    interval = interval or 60_000
    order: dict[str, int] = {}
    for i, name in enumerate(order_list):
        if name in order:
            return [f"group name repeated in evaluation order: {name}"]
        order[name] = i
    errors: list[str] = []
    for tg in groups:
        try:
            errors += _run_group(tg, files, interval, order)
        except _Errors as exc:
            errors += exc.errors
        except RuleError as exc:
            errors.append(str(exc))
    return errors


def test_rules(
    files: Sequence[str],
    out: TextIO | None = None,  # noqa: PT028 - promtool's `test rules`, not a pytest test
    err: TextIO | None = None,  # noqa: PT028
) -> int:
    """``promtool test rules FILE...``: 0 when every test passes, 1 otherwise.

    Progress and results go to ``out``; failures and warnings to ``err`` (``out`` when
    not given), in promtool's order and text.
    """
    stdout = out if out is not None else sys.stdout
    stderr = err if err is not None else (out if out is not None else sys.stderr)
    failed = False
    for path in files:
        print("Unit Testing: ", path, file=stdout)
        errors = _test_file(path, stdout, stderr)
        if errors:
            print("  FAILED:", file=stderr)
            for e in errors:
                print(e, file=stderr)
                print(file=stdout)
            failed = True
        else:
            print("  SUCCESS", file=stdout)
        print(file=stdout)
    return 1 if failed else 0


test_rules.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
