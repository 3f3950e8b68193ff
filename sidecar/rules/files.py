"""Prometheus rule files on disk: find, read, load, and check as ``promtool check rules``.

What a file means is ``sidecar.rules.rulefmt``; this module owns the files: the
``rules.files`` globs and the rule pack shipped in the package, reading each file under a
size cap, loading all of them at start or reload (``RuleError`` listing every problem),
and ``check-rules``' report. Errors read like promtool's::

    rules/leak.yml: 7:15: group "leaks", rule 2, "CacheGrowing": could not parse expression: ...
"""

from __future__ import annotations

import glob
import sys
from collections.abc import Sequence
from importlib.resources import files as package_files
from pathlib import Path
from typing import TextIO

import structlog

from sidecar.core.errors import RuleError
from sidecar.gocompat.yamlnode import MAX_FILE_BYTES
from sidecar.rules.rulefmt import GroupSpec, parse_rule_text

__all__ = [
    "check_rules",
    "expand_patterns",
    "load_patterns",
    "load_rules",
    "longest_range_ms",
    "pack_pattern",
    "parse_rule_file",
    "parse_rule_files",
    "rule_patterns",
]

log = structlog.get_logger(__name__)


def parse_rule_file(path: str) -> tuple[list[GroupSpec], list[str]]:
    """Read and validate one file: its groups, and every problem as a promtool-style line."""
    groups, errors, _ = _parse_rule_file(path)
    return groups, errors


def _parse_rule_file(path: str) -> tuple[list[GroupSpec], list[str], list[str]]:
    """``parse_rule_file``, and which of the problems are rules the evaluator refuses."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return [], [f"{path}: open {path}: {exc.strerror.lower() if exc.strerror else exc}"], []
    if len(data) > MAX_FILE_BYTES:
        return [], [f"{path}: larger than {MAX_FILE_BYTES} bytes"], []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [f"{path}: yaml: invalid UTF-8 at byte {exc.start}"], []
    try:
        return parse_rule_text(path, text)
    except RecursionError:
        return [], [f"{path}: yaml: nesting too deep"], []


def expand_patterns(patterns: Sequence[str]) -> tuple[list[str], list[str]]:
    """Glob each pattern (sorted, de-duplicated); also return the patterns matching nothing."""
    files: list[str] = []
    empty: list[str] = []
    for pattern in patterns:
        matched = (
            sorted(glob.glob(pattern))
            if glob.has_magic(pattern)
            else ([pattern] if Path(pattern).exists() else [])
        )
        if not matched:
            empty.append(pattern)
        files.extend(m for m in matched if m not in files)
    return files, empty


def pack_pattern() -> str:
    """The glob of the rule pack shipped in the package (``sidecar.pack``).

    The package is installed as plain files (wheel or editable), so the pack has a path.
    """
    return str(Path(str(package_files("sidecar.pack"))) / "*.yml")


def rule_patterns(configured: Sequence[str] | None) -> list[str]:
    """``rules.files`` as configured, or the packaged pack when the key is unset."""
    return [pack_pattern()] if configured is None else list(configured)


def load_patterns(patterns: Sequence[str]) -> list[GroupSpec]:
    """``rules.files`` at start: expand the globs, load every file; ``RuleError`` on any
    problem. A pattern that matches nothing is logged, as Prometheus ignores it."""
    files, empty = expand_patterns(patterns)
    for pattern in empty:
        log.warning("rules.no_files_matched", pattern=pattern)
    groups = load_rules(files) if files else []
    log.info(
        "rules.loaded",
        files=len(files),
        groups=len(groups),
        rules=sum(len(g.rules) for g in groups),
    )
    return groups


def longest_range_ms(groups: Sequence[GroupSpec]) -> int:
    """The longest range (with offset) any loaded expression reads: what the store keeps
    on top of the lookback."""
    return max((r.query.max_range_ms for g in groups for r in g.rules), default=0)


def parse_rule_files(files: Sequence[str]) -> tuple[list[GroupSpec], list[str]]:
    """``parse_rule_file`` over every file: all their groups and all their problems."""
    groups: list[GroupSpec] = []
    errors: list[str] = []
    for path in files:
        g, errs = parse_rule_file(path)
        groups.extend(g)
        errors.extend(errs)
    return groups, errors


def load_rules(files: Sequence[str]) -> list[GroupSpec]:
    """Load every file; any problem anywhere raises one ``RuleError`` listing them all.

    A rule the evaluator cannot run is not such a problem: it loads, fails each evaluation
    with the reason (its health), and is logged here as ``rules.rule_refused``.
    """
    groups: list[GroupSpec] = []
    errors: list[str] = []
    for path in files:
        g, errs, refusals = _parse_rule_file(path)
        groups.extend(g)
        errors.extend(e for e in errs if e not in refusals)
        for line in refusals:
            log.warning("rules.rule_refused", problem=line)
    if errors:
        # Each line names its own file, group and rule, as promtool prints them.
        raise RuleError("\n".join(errors))
    return groups


def check_rules(files: Sequence[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``promtool check rules``: report each file; 0 when all are valid, else 1.

    Progress goes to ``out``, failures to ``err`` (``out`` when not given), as promtool
    splits them between stdout and stderr.
    """
    stdout = out if out is not None else sys.stdout
    stderr = err if err is not None else (out if out is not None else sys.stderr)
    failed = False
    for path in files:
        print("Checking", path, file=stdout)
        groups, errors = parse_rule_file(path)
        if errors:
            failed = True
            print("  FAILED:", file=stderr)
            for e in errors:
                print(e, file=stderr)
        else:
            print(f"  SUCCESS: {sum(len(g.rules) for g in groups)} rules found", file=stdout)
        print(file=stdout)
    return 1 if failed else 0
