"""The rule-file format, ``rulefmt``: one file's YAML text to typed groups and problems.

The format is Prometheus 2.42's: ``groups`` of ``name``, ``interval``, ``limit`` and
``rules``; alerting rules with ``alert``, ``expr``, ``for``, ``keep_firing_for``,
``labels``, ``annotations``; recording rules with ``record``, ``expr``, ``labels``. Fields
2.42 does not know (``query_offset``, group ``labels``) are rejected with its message, so
a file accepted here is accepted by that promtool.

On top of promtool's checks, every expression is compiled by the embedded PromQL
evaluator and every label/annotation template by the embedded template engine. PromQL
the evaluator cannot run (Prometheus 3 syntax, which promtool 2.42 reports as a parse
error, in its words here too) is a problem for ``check-rules``, but at start it does not
stop the sidecar: the rule loads with a query that fails every evaluation naming the
construct, so it shows ``health: "err"`` while the rest of its file runs.

Owns ``RuleSpec`` and ``GroupSpec``, the values the later rules stages work from. No file
system here: finding, reading and reporting files is ``sidecar.rules.files``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from yaml.nodes import Node, ScalarNode

from sidecar.core.durations import parse_duration_ms
from sidecar.core.errors import RuleError
from sidecar.gocompat.yamlnode import Decoder, YamlSyntaxError, compose, position
from sidecar.rules.promql import PromQLError, Query, compile_expr, refused_query
from sidecar.rules.promql.syntax_errors import explain
from sidecar.rules.templates.expand import AlertTemplate, compile_template

__all__ = ["GroupSpec", "RuleSpec", "parse_rule_text"]

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_GROUPS = frozenset({"groups"})
_GROUP = frozenset({"name", "interval", "limit", "rules"})
_RULE = frozenset({"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"})
_NOT_A_VECTOR = ("range vector as a result", "string result")
_NOT_A_VECTOR_ERROR = "rule result is not a vector or scalar"


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One loaded rule: its text, compiled expression and (alerts) compiled templates."""

    kind: Literal["alert", "record"]
    name: str
    expr: str
    query: Query
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...] = ()
    for_ms: int = 0
    keep_firing_for_ms: int = 0
    label_templates: tuple[tuple[str, AlertTemplate], ...] = ()
    annotation_templates: tuple[tuple[str, AlertTemplate], ...] = ()


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """One rule group; ``interval_ms`` None means the configured evaluation interval."""

    file: str
    name: str
    interval_ms: int | None
    limit: int
    rules: tuple[RuleSpec, ...]

    @property
    def key(self) -> str:
        """Prometheus's group key, ``file;name``: group names are unique per file only."""
        return f"{self.file};{self.name}"


class _FileParser:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.dec = Decoder()
        self.errors: list[str] = []
        self.refusals: list[str] = []
        """The errors that are valid PromQL the evaluator cannot run (also in ``errors``)."""

    def err(self, pos: str | None, where: str, message: str) -> None:
        """Record ``FILE: [LINE:COL: ]WHERE: MESSAGE``."""
        at = f"{pos}: " if pos else ""
        self.errors.append(f"{self.filename}: {at}{where}: {message}")

    def parse(self, text: str) -> list[GroupSpec]:
        try:
            root = compose(text)
        except YamlSyntaxError as exc:
            self.errors.append(f"{self.filename}: {exc}")
            return []
        if root is None:
            return []
        top = self.dec.mapping(root, "rulefmt.RuleGroups", _GROUPS)
        raw_groups = self.dec.sequence(top.get("groups"), "[]rulefmt.RuleGroup")
        groups = [self.dec.mapping(g, "rulefmt.RuleGroup", _GROUP) for g in raw_groups]
        rules = [
            [
                self.dec.mapping(r, "rulefmt.RuleNode", _RULE)
                for r in self.dec.sequence(g.get("rules"), "[]rulefmt.RuleNode")
            ]
            for g in groups
        ]
        # Decode every typed field before judging anything, as yaml.v3 does.
        names = [self.dec.string(g.get("name")) for g in groups]
        limits = [self.dec.integer(g.get("limit")) for g in groups]
        labels = [[self.dec.string_map(r.get("labels")) for r in rs] for rs in rules]
        annotations = [[self.dec.string_map(r.get("annotations")) for r in rs] for rs in rules]
        for rs in rules:
            for r in rs:
                for key in ("record", "alert", "expr", "for", "keep_firing_for"):
                    self.dec.string(r.get(key))
        if self.dec.errors:
            lines = "\n".join(f"  {e}" for e in self.dec.errors)
            self.errors.append(f"{self.filename}: yaml: unmarshal errors:\n{lines}")
            return []
        out: list[GroupSpec] = []
        seen: set[str] = set()
        for gi, (g, node) in enumerate(zip(groups, raw_groups, strict=True)):
            name = names[gi]
            if not name:
                self.errors.append(
                    f"{self.filename}: {position(node)}: Groupname must not be empty"
                )
            if name in seen:
                self.errors.append(
                    f"{self.filename}: {position(node)}: "
                    f'groupname: "{name}" is repeated in the same file'
                )
            seen.add(name)
            interval_ms = self._duration(g.get("interval"), f"group {_q(name)}", "interval")
            specs = [
                self._rule(name, ri + 1, r, labels[gi][ri], annotations[gi][ri])
                for ri, r in enumerate(rules[gi])
            ]
            out.append(
                GroupSpec(
                    file=self.filename,
                    name=name,
                    interval_ms=interval_ms or None,
                    limit=limits[gi],
                    rules=tuple(s for s in specs if s is not None),
                )
            )
        return out

    def _duration(self, node: Node | None, where: str, what: str) -> int:
        text = self.dec.string(node)
        # Absent or null is no duration; an explicit '' is Prometheus's "empty duration string".
        if not text and (self.dec.is_null(node) or not isinstance(node, ScalarNode)):
            return 0
        try:
            return parse_duration_ms(text)
        except ValueError as exc:
            self.err(position(node), where, f"invalid '{what}': {exc}")
            return 0

    def _rule(
        self,
        group: str,
        index: int,
        r: dict[str, Node],
        labels: dict[str, str],
        annotations: dict[str, str],
    ) -> RuleSpec | None:
        n_errors, n_refusals = len(self.errors), len(self.refusals)
        record, alert = self.dec.string(r.get("record")), self.dec.string(r.get("alert"))
        rec_node, alert_node, expr_node = r.get("record"), r.get("alert"), r.get("expr")
        name = alert or record
        where = f"group {_q(group)}, rule {index}, {_q(name)}"
        if record and alert:
            pos = f"{position(rec_node)}: {position(alert_node)}"
            self.errors.append(
                f"{self.filename}: {pos}: {where}: only one of 'record' and 'alert' must be set"
            )
        if not record and not alert:
            self.err(position(rec_node), where, "one of 'record' or 'alert' must be set")
        expr = self.dec.string(expr_node)
        query: Query | None = None
        if not expr:
            self.err(position(expr_node), where, "field 'expr' must be set in rule")
        else:
            query = self._compile(expr, expr_node, where)
        for_ms = self._duration(r.get("for"), where, "for")
        keep_ms = self._duration(r.get("keep_firing_for"), where, "keep_firing_for")
        if record:
            for bad, present in (
                ("annotations", bool(annotations)),
                ("for", for_ms != 0),
                ("keep_firing_for", keep_ms != 0),
            ):
                if present:
                    self.err(position(rec_node), where, f"invalid field '{bad}' in recording rule")
            if not _METRIC_NAME.match(record):
                self.err(position(rec_node), where, f"invalid recording rule name: {record}")
        for k in sorted(labels):
            if not _LABEL_NAME.match(k) or k == "__name__":
                self.err(None, where, f"invalid label name: {k}")
            if not _utf8(labels[k]):
                self.err(None, where, f"invalid label value: {labels[k]!r}")
        for k in sorted(annotations):
            if not _LABEL_NAME.match(k):
                self.err(None, where, f"invalid annotation name: {k}")
            if not _utf8(annotations[k]):
                self.err(None, where, f"invalid annotation value: {annotations[k]!r}")
        label_tmpls: tuple[tuple[str, AlertTemplate], ...] = ()
        ann_tmpls: tuple[tuple[str, AlertTemplate], ...] = ()
        if alert and not record:
            label_tmpls = self._templates(labels, "label", alert, where)
            ann_tmpls = self._templates(annotations, "annotation", alert, where)
        refused = len(self.refusals) - n_refusals
        if len(self.errors) - refused > n_errors or query is None:
            return None
        return RuleSpec(
            kind="alert" if alert else "record",
            name=name,
            expr=expr,
            query=query,
            labels=tuple(sorted(labels.items())),
            annotations=tuple(sorted(annotations.items())),
            for_ms=for_ms,
            keep_firing_for_ms=keep_ms,
            label_templates=label_tmpls,
            annotation_templates=ann_tmpls,
        )

    def _compile(self, expr: str, node: Node | None, where: str) -> Query | None:
        try:
            return compile_expr(expr)
        except PromQLError as exc:
            if exc.constructs and all(c.startswith(_NOT_A_VECTOR) for c in exc.constructs):
                # Valid PromQL no rule can use: promtool accepts the file, and Prometheus
                # fails the rule at every evaluation, with these words.
                return refused_query(expr, PromQLError(_NOT_A_VECTOR_ERROR, expr=expr))
            if exc.constructs:
                # Syntax 2.42 does not know (Prometheus 3's) is reported in promtool's words;
                # anything else names the construct. Either way the rule still loads and
                # fails each evaluation with the construct named.
                syntax = explain(expr)
                if syntax is not None:
                    self.err(position(node), where, f"could not parse expression: {syntax}")
                else:
                    self.err(position(node), where, exc.message)
                self.refusals.append(self.errors[-1])
                return refused_query(expr, exc)
            self.err(position(node), where, f"could not parse expression: {exc.message}")
            return None

    def _templates(
        self, values: dict[str, str], what: str, alert: str, where: str
    ) -> tuple[tuple[str, AlertTemplate], ...]:
        out = []
        for key in sorted(values):
            try:
                out.append((key, compile_template(values[key], alert)))
            except RuleError as exc:
                self.err(None, where, f"{what} {_q(key)}: {exc.message}")
        return tuple(out)


def _utf8(text: str) -> bool:
    # YAML escapes can produce lone surrogates, which no UTF-8 consumer accepts.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_rule_text(filename: str, text: str) -> tuple[list[GroupSpec], list[str], list[str]]:
    """One file's text: its groups, every problem as a promtool-style line naming
    ``filename``, and which of those problems are rules the evaluator refuses (they still
    load, failing each evaluation). ``RecursionError`` on YAML nested too deep."""
    parser = _FileParser(filename)
    groups = parser.parse(text)
    return groups, parser.errors, parser.refusals
