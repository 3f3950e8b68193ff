"""Rule files: loading, promtool-compatible validation, embedded-engine support checks."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest

from sidecar.core.errors import RuleError
from sidecar.rules.files import (
    check_rules,
    expand_patterns,
    load_patterns,
    load_rules,
    longest_range_ms,
    parse_rule_file,
)
from sidecar.store import Store

REPO = Path(__file__).resolve().parent.parent

GOOD = """\
groups:
  - name: leaks
    interval: 30s
    limit: 10
    rules:
      - record: job:cache_keys:sum
        expr: sum by (job) (cache_keys)
        labels: {source: sidecar}
      - alert: CacheGrowing
        expr: delta(job:cache_keys:sum[10m]) > 1000
        for: 5m
        keep_firing_for: 1m30s
        labels: {severity: warning, action: cache_flush}
        annotations:
          summary: "{{ $value | humanize }} new keys"
  - name: other
    rules:
      - alert: Down
        expr: absent(up)
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, "rules.yml", text)
    with pytest.raises(RuleError) as info:
        load_rules([path])
    return str(info.value).replace(path, "rules.yml")


def test_loads_groups_and_rules(tmp_path: Path) -> None:
    """A valid file gives its groups with intervals, limits, durations and sorted labels."""
    groups = load_rules([write(tmp_path, "r.yml", GOOD)])
    assert [(g.name, g.interval_ms, g.limit, len(g.rules)) for g in groups] == [
        ("leaks", 30_000, 10, 2),
        ("other", None, 0, 1),
    ]
    record, alert = groups[0].rules
    assert (record.kind, record.name, record.labels) == (
        "record",
        "job:cache_keys:sum",
        (("source", "sidecar"),),
    )
    assert (alert.kind, alert.for_ms, alert.keep_firing_for_ms) == ("alert", 300_000, 90_000)
    assert alert.labels == (("action", "cache_flush"), ("severity", "warning"))
    assert [k for k, _ in alert.annotation_templates] == ["summary"]
    assert alert.query.max_range_ms == 600_000
    assert groups[0].key == f"{tmp_path / 'r.yml'};leaks"


def test_check_rules_success_output(tmp_path: Path) -> None:
    """check_rules prints promtool's success lines and returns 0."""
    path = write(tmp_path, "r.yml", GOOD)
    out = io.StringIO()
    assert check_rules([path], out) == 0
    assert out.getvalue() == f"Checking {path}\n  SUCCESS: 3 rules found\n\n"


def test_check_rules_reports_every_problem_like_promtool(tmp_path: Path) -> None:
    """Each problem is one promtool-style line with position, group, rule; exit code 1."""
    path = write(
        tmp_path,
        "bad.yml",
        """\
groups:
  - name: g
    rules:
      - alert: A
        expr: up ==
      - record: "bad-name"
        expr: up
        labels:
          "a-b": x
      - alert: B
        record: c
        expr: up
      - alert: C
        expr: sum(up)
        annotations:
          x: "{{ humanizex $value }}"
      - record: r
        expr: up
        for: 1m
      - alert: D
        expr: mad_over_time(h_bucket[5m])
        for: 5x
  - name: g
    rules: []
  - name: ""
    rules:
      - expr: up
""",
    )
    out = io.StringIO()
    assert check_rules([path], out) == 1
    assert out.getvalue().replace(path, "bad.yml") == (
        "Checking bad.yml\n"
        "  FAILED:\n"
        'bad.yml: 5:15: group "g", rule 1, "A": could not parse expression: '
        "1:6: parse error: unexpected end of input\n"
        'bad.yml: 6:17: group "g", rule 2, "bad-name": invalid recording rule name: bad-name\n'
        'bad.yml: group "g", rule 2, "bad-name": invalid label name: a-b\n'
        "bad.yml: 11:17: 10:16: group \"g\", rule 3, \"B\": only one of 'record' and 'alert' "
        "must be set\n"
        'bad.yml: group "g", rule 4, "C": annotation "x": template: __alert_C:1: function '
        '"humanizex" not defined\n'
        'bad.yml: 17:17: group "g", rule 5, "r": invalid field \'for\' in recording rule\n'
        'bad.yml: 21:15: group "g", rule 6, "D": could not parse expression: 1:1: parse error: '
        'unknown function with name "mad_over_time"\n'
        'bad.yml: 22:14: group "g", rule 6, "D": invalid \'for\': not a valid duration '
        'string: "5x"\n'
        'bad.yml: 23:5: groupname: "g" is repeated in the same file\n'
        "bad.yml: 25:5: Groupname must not be empty\n"
        "bad.yml: 0:0: group \"\", rule 1, \"\": one of 'record' or 'alert' must be set\n"
        "\n"
    )


def test_unsupported_construct_loads_as_a_failing_rule(tmp_path: Path) -> None:
    """Valid PromQL the evaluator cannot run loads, with the rest of its file, as a rule
    whose every evaluation fails with the reason; check-rules still reports it."""
    path = write(
        tmp_path,
        "rules.yml",
        "groups:\n  - name: g\n    rules:\n      - alert: H\n        expr: limitk(1, x)\n"
        "      - record: r\n        expr: x\n",
    )
    (group,) = load_rules([path])
    refused, fine = group.rules
    assert fine.query.text == "x"
    with pytest.raises(RuleError) as info:
        refused.query.evaluate(Store(retention_ms=1, max_series=1), 0)
    assert str(info.value) == (
        "cannot evaluate 'limitk(1, x)': not supported: aggregation limitk "
        "(not a Prometheus 2.42 aggregation)"
    )
    out = io.StringIO()
    assert check_rules([path], out) == 1
    # check-rules prints what promtool prints for syntax 2.42 does not know.
    assert out.getvalue().endswith(
        'group "g", rule 1, "H": could not parse expression: 1:1: parse error: '
        'unknown function with name "limitk"\n\n'
    )


def test_a_range_vector_result_is_valid_but_fails_each_evaluation(tmp_path: Path) -> None:
    """As promtool, check-rules accepts `expr: x[5m]`; its evaluation fails as Prometheus's."""
    path = write(
        tmp_path, "rules.yml", "groups:\n  - name: g\n    rules:\n      - record: r\n"
        "        expr: x[5m]\n",
    )  # fmt: skip
    assert check_rules([path], io.StringIO()) == 0
    (group,) = load_rules([path])
    with pytest.raises(RuleError, match=r"^rule result is not a vector or scalar$"):
        group.rules[0].query.evaluate(Store(retention_ms=1, max_series=1), 0)


def test_syntax_error_is_a_load_error(tmp_path: Path) -> None:
    """A PromQL syntax error fails the load, naming file, group and rule."""
    text = "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: sum(up\n"
    assert load_error(tmp_path, text) == (
        'rules.yml: 5:15: group "g", rule 1, "r": could not parse expression: '
        "1:7: parse error: unclosed left parenthesis"
    )


def test_template_error_is_a_load_error(tmp_path: Path) -> None:
    """A template that does not parse, or that the engine cannot run, fails the load."""
    text = (
        "groups:\n  - name: g\n    rules:\n      - alert: T\n        expr: up\n"
        '        labels:\n          team: "{{ if }}"\n'
        "        annotations:\n          q: '{{ nofunc \"up\" }}'\n"
    )
    assert load_error(tmp_path, text) == (
        'rules.yml: group "g", rule 1, "T": label "team": template: __alert_T:1: '
        "missing value for if\n"
        'rules.yml: group "g", rule 1, "T": annotation "q": template: __alert_T:1: '
        'function "nofunc" not defined'
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "groups:\n  - name: a\n    query_offset: 1m\n    rules: []\n",
            "rules.yml: yaml: unmarshal errors:\n"
            "  line 3: field query_offset not found in type rulefmt.RuleGroup",
        ),
        (
            "groups:\n  - name: a\n    labels: {x: y}\n    rules: []\n",
            "rules.yml: yaml: unmarshal errors:\n"
            "  line 3: field labels not found in type rulefmt.RuleGroup",
        ),
        (
            "groups:\n  - name: a\n    name: b\n    rules: []\n",
            "rules.yml: yaml: unmarshal errors:\n"
            '  line 3: mapping key "name" already defined at line 2',
        ),
        (
            "groups:\n  - name: a\n    rules:\n      - record: x\n        expr: up\n"
            "        labels: {a: [1]}\n        keep: 1\n",
            "rules.yml: yaml: unmarshal errors:\n"
            "  line 7: field keep not found in type rulefmt.RuleNode\n"
            "  line 6: cannot unmarshal !!seq into string",
        ),
        (
            "- a\n",
            "rules.yml: yaml: unmarshal errors:\n"
            "  line 1: cannot unmarshal !!seq into rulefmt.RuleGroups",
        ),
        (
            "groups:\n  - name: a\n   rules: []\n",
            "rules.yml: yaml: line 3: expected <block end>, but found '<block mapping start>'",
        ),
        (
            "groups:\n  - name: a\n    interval: 1x\n    rules: []\n",
            'rules.yml: 3:15: group "a": invalid \'interval\': not a valid duration string: "1x"',
        ),
        (
            "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n"
            "        for: ''\n        keep_firing_for: 300y\n",
            'rules.yml: 6:14: group "a", rule 1, "A": invalid \'for\': empty duration string\n'
            'rules.yml: 7:26: group "a", rule 1, "A": invalid \'keep_firing_for\': '
            "duration out of range",
        ),
        (
            "groups:\n  - name: a\n    limit: lots\n    rules: []\n",
            "rules.yml: yaml: unmarshal errors:\n  line 3: cannot unmarshal !!str `lots` into int",
        ),
    ],
)
def test_rejects_what_prometheus_2_42_rejects(tmp_path: Path, text: str, message: str) -> None:
    """Fields 2.42 does not know, duplicate keys, wrong types and bad YAML are errors."""
    assert load_error(tmp_path, text) == message


def test_hostile_files_fail_cleanly(tmp_path: Path) -> None:
    """Binary, deeply nested, missing and oversized files each give one clear problem."""
    binary = tmp_path / "bin.yml"
    binary.write_bytes(b"groups:\n  - name: \xff\xfe\n")
    assert parse_rule_file(str(binary)) == ([], [f"{binary}: yaml: invalid UTF-8 at byte 18"])
    deep = write(tmp_path, "deep.yml", "groups: " + "[" * 5000 + "]" * 5000 + "\n")
    assert parse_rule_file(deep) == ([], [f"{deep}: yaml: nesting too deep"])
    missing = str(tmp_path / "missing.yml")
    assert parse_rule_file(missing) == (
        [],
        [f"{missing}: open {missing}: no such file or directory"],
    )
    huge = tmp_path / "huge.yml"
    huge.write_bytes(b"#" * (8 * 1024 * 1024 + 1))
    assert parse_rule_file(str(huge)) == ([], [f"{huge}: larger than 8388608 bytes"])


def test_expand_patterns(tmp_path: Path) -> None:
    """Globs expand sorted and de-duplicated; patterns matching nothing are returned."""
    for name in ("b.yml", "a.yml", "c.txt"):
        write(tmp_path, name, "")
    files, empty = expand_patterns(
        [str(tmp_path / "*.yml"), str(tmp_path / "a.yml"), str(tmp_path / "none*.yml")]
    )
    assert files == [str(tmp_path / "a.yml"), str(tmp_path / "b.yml")]
    assert empty == [str(tmp_path / "none*.yml")]


def test_load_patterns_logs_what_it_loaded(tmp_path: Path, log_stream: io.StringIO) -> None:
    """Loading from config globs logs unmatched patterns and the totals."""
    write(tmp_path, "a.yml", GOOD)
    groups = load_patterns([str(tmp_path / "*.yml"), str(tmp_path / "none/*.yml")])
    assert longest_range_ms(groups) == 600_000
    assert longest_range_ms([]) == 0
    events = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert [(e["event"], e.get("pattern"), e.get("rules")) for e in events] == [
        ("rules.no_files_matched", str(tmp_path / "none/*.yml"), None),
        ("rules.loaded", None, 3),
    ]


def test_shipped_rule_pack_loads() -> None:
    """The repository's rules/ load into the embedded engine without a problem."""
    files, empty = expand_patterns([str(REPO / "rules" / "*.yml")])
    assert (files, empty) == ([str(REPO / "rules" / "leaks.yml")], [])
    assert [r.name for g in load_rules(files) for r in g.rules] == [
        "CacheKeysGrowing",
        "ConnPoolSaturated",
        "HeapFloorRising",
        "OOMPredicted",
        "OOMImminent",
        "GoroutinesGrowing",
    ]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("text", "code"),
    [
        (GOOD, 0),
        ("groups:\n  - name: a\n    query_offset: 1m\n    rules: []\n", 1),
        ("groups:\n  - name: a\n    rules:\n      - record: a-b\n        expr: up\n", 1),
        (
            "groups:\n  - name: a\n    rules:\n      - alert: x\n        expr: up\n"
            "        for: 1\n",
            1,
        ),
        (
            "groups:\n  - name: a\n    rules:\n      - alert: x\n        expr: up\n"
            "        annotations: {a: '{{ end }}'}\n",
            1,
        ),
        (
            "groups:\n  - name: a\n    rules:\n      - record: x\n        expr: up\n"
            "        labels: {__name__: y}\n",
            1,
        ),
        ("", 0),
    ],
)
def test_exit_code_agrees_with_promtool(tmp_path: Path, text: str, code: int) -> None:
    """check_rules and `promtool check rules` agree on what is valid."""
    path = write(tmp_path, "r.yml", text)
    real = subprocess.run(
        ["promtool", "check", "rules", path],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (real.returncode, check_rules([path], io.StringIO())) == (code, code)


@pytest.mark.integration
@pytest.mark.parametrize(
    "text",
    [
        GOOD,
        "groups:\n  - name: a\n    query_offset: 1m\n    rules: []\n",
        "groups:\n  - name: a\n    rules:\n      - record: a-b\n        expr: up\n"
        "  - name: a\n    rules: []\n",
        "groups:\n  - name: a\n    rules:\n      - alert: x\n        expr: up\n"
        "        annotations: {a: '{{ $nope }}'}\n",
        "groups:\n  - name: a\n    rules:\n      - alert: x\n        expr: up\n"
        "        annotations: {a: '{{ \"\\xZZ\" }}'}\n",
    ],
)
def test_output_matches_promtool(tmp_path: Path, text: str) -> None:
    """For promtool's own checks, check_rules prints promtool's words on the same streams."""
    path = write(tmp_path, "r.yml", text)
    real = subprocess.run(
        ["promtool", "check", "rules", path],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out, err = io.StringIO(), io.StringIO()
    code = check_rules([path], out, err)
    assert (code, out.getvalue(), err.getvalue()) == (real.returncode, real.stdout, real.stderr)


def test_label_values_must_be_utf8(tmp_path: Path) -> None:
    """A YAML escape that makes a lone surrogate is an invalid label or annotation value."""
    text = (
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n"
        '        labels: {a: "\\ud800"}\n        annotations: {b: "x\\udfff"}\n'
    )
    assert load_error(tmp_path, text) == (
        'rules.yml: group "g", rule 1, "A": invalid label value: \'\\ud800\'\n'
        'rules.yml: group "g", rule 1, "A": invalid annotation value: \'x\\udfff\''
    )
