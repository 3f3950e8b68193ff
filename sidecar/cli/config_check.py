"""``leak-sidecar check-config``: the file and every file it names, as ``promtool check config``.

Three outcomes, one line per finding on stderr, ``key: problem``:

- exit 2: the config itself cannot be loaded (syntax, unknown keys, bad values, and the
  secret files that loading reads: ``server.token_file``, ``http_config`` files);
- exit 1: it loads, but something it names would fail ``run`` or keep it unready: a rule
  file that does not parse (in ``check-rules``' words), a ``rules.files`` glob matching
  nothing, zero rules outside fleet mode (``files: []``), an unreadable or malformed
  ``app.memory_limit_file``, a ``state_dir`` that is a file or lies under one;
- exit 0: nothing wrong; warnings may still be printed.

What depends on the environment the check runs in rather than on the file (an unset
``${VAR}``, no token in env or file, a ``state_dir`` this user cannot write) is a
``warning:`` line unless ``--strict-env``: a config is usually checked in CI, far from
the pod's Downward API, secrets and volumes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

import yaml

from sidecar.core.config import ENV_TOKEN, Config
from sidecar.core.config_load import load
from sidecar.core.errors import ConfigError
from sidecar.rules.files import expand_patterns, parse_rule_file, rule_patterns

__all__ = ["EXIT_CONFIG", "EXIT_FILES", "EXIT_OK", "check_config"]

EXIT_OK = 0
EXIT_FILES = 1
EXIT_CONFIG = 2

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_STAND_IN_TOKEN = "stand-in-token-of-check-config"  # noqa: S105 -- never authenticates


def check_config(
    path: Path, env: Mapping[str, str], *, strict_env: bool, out: TextIO, err: TextIO
) -> int:
    """Check ``path`` and what it references; print findings; return the exit code."""
    warnings: list[str] = []
    if not strict_env:
        env, warnings = _stand_in_environment(path, env)
    try:
        cfg = load(path, env)
    except ConfigError as exc:
        _print(err, warnings, exc.problems)
        return EXIT_CONFIG
    warnings.extend(_token_warning(cfg))
    problems, rules = _referenced(cfg)
    state_problems, state_env = _state_dir(cfg.state_dir)
    problems.extend(state_problems)
    # Permissions belong to whoever runs the check, not to the pod's volume.
    (problems if strict_env else warnings).extend(state_env)
    _print(err, warnings, problems)
    if problems:
        return EXIT_FILES
    print(f"{path}: OK ({rules} rules)", file=out)
    return EXIT_OK


def _print(err: TextIO, warnings: list[str], problems: list[str]) -> None:
    for line in warnings:
        print(f"warning: {line}", file=err)
    for line in problems:
        print(line, file=err)


def _strings(node: Any, key: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, f"{key}.{k}" if key else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{key}.{i}")
    elif isinstance(node, str):
        yield key, node


def _stand_in_environment(path: Path, env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The environment with a stand-in for each variable the file needs and this one
    lacks, and a warning for each; an unreadable file is left for ``load`` to report."""
    filled = dict(env)
    warnings: list[str] = []
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return filled, warnings
    for key, value in _strings(raw, ""):
        for name in _ENV_REF.findall(value):
            if name not in env:
                warnings.append(f"{key}: environment variable {name} is not set here; run needs it")
                # A stand-in that is a valid label value, URL host and path segment alike.
                filled[name] = "unset-" + name.lower().replace("_", "-")
    server = raw.get("server") if isinstance(raw, dict) else None
    has_file = isinstance(server, dict) and server.get("token_file") is not None
    if ENV_TOKEN not in env and not has_file:
        filled[ENV_TOKEN] = _STAND_IN_TOKEN
    return filled, warnings


def _token_warning(cfg: Config) -> list[str]:
    """A warning when the token came from the stand-in and ``run`` would need a real one."""
    if cfg.token is None or cfg.token.get_secret_value() != _STAND_IN_TOKEN:
        return []
    host = cfg.server.listen.rpartition(":")[0].strip("[]")
    if cfg.server.allow_unauthenticated or host in ("localhost", "127.0.0.1", "::1"):
        return []
    return [
        f"token: env {ENV_TOKEN} is not set here and there is no server.token_file; run "
        f"refuses to listen on {cfg.server.listen} without one"
    ]


def _referenced(cfg: Config) -> tuple[list[str], int]:
    """Problems in the files and directories ``cfg`` names, and how many rules load."""
    problems: list[str] = []
    files, empty = expand_patterns(rule_patterns(cfg.rules.files))
    problems.extend(f"rules.files: {pattern} matches no file" for pattern in empty)
    rules = 0
    for file in files:
        groups, errors = parse_rule_file(file)
        rules += sum(len(g.rules) for g in groups)
        problems.extend(f"rules.files: {line}" for line in errors)
    if rules == 0 and cfg.rules.files != [] and not problems:
        problems.append(
            "rules.files: no rules loaded, /readyz would answer 503 "
            "(say files: [] for fleet mode, without embedded rules)"
        )
    problems.extend(_memory_limit(cfg))
    return problems, rules


def _memory_limit(cfg: Config) -> list[str]:
    from sidecar.supervisor import memory_limit  # noqa: PLC0415 -- the one reader, reused

    try:
        memory_limit(cfg)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def _state_dir(path: Path) -> tuple[list[str], list[str]]:
    """Whether ``path`` is, or can become, a directory: problems in the file system's
    shape, then problems of permission (which depend on who runs the check)."""
    if path.exists():
        if not path.is_dir():
            return [f"state_dir: {path} exists and is not a directory"], []
        if not os.access(path, os.W_OK | os.X_OK):
            return [], [f"state_dir: {path} is not writable here"]
        return [], []
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return [f"state_dir: cannot create {path}: {parent} is not a directory"], []
    if not os.access(parent, os.W_OK | os.X_OK):
        return [], [f"state_dir: cannot create {path} here: {parent} is not writable"]
    return [], []
