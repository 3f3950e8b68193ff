"""Loading the configuration: the YAML file, ``${NAME}`` references, the token, error lines.

``load`` is called once, at start; what it returns is passed down and nothing else
reads ``os.environ``. A problem is reported as a ``key.path: problem`` line in a
``ConfigError`` (the command then exits 2): the file's first problem, as Prometheus
reports its own config's. String values may name environment
variables as ``${NAME}`` (as Prometheus's ``expand-external-labels`` does), so that the
pod and namespace from the Downward API can become external labels; an unset variable
is an error. The token comes from ``LEAK_SIDECAR_TOKEN`` or ``server.token_file``,
never from the file itself. Relative paths in the file (``rules.files``, ``token_file``,
``memory_limit_file``, ``state_dir``, the ``http_config`` files) are relative to the
file's directory, as in Prometheus.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from sidecar.core.config import ENV_TOKEN, Config
from sidecar.core.errors import ConfigError, clip
from sidecar.core.validation import Problem

__all__ = ["ENV_CONFIG", "load", "validation_problems", "yaml_problem"]

ENV_CONFIG = "LEAK_SIDECAR_CONFIG"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(node: Any, env: Mapping[str, str], path: str, problems: list[str]) -> Any:
    if isinstance(node, dict):
        return {
            k: _expand(v, env, f"{path}.{k}" if path else str(k), problems) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_expand(v, env, f"{path}.{i}", problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                problems.append(f"{path}: environment variable {name} is not set")
                return ""
            return env[name]

        return _ENV_REF.sub(sub, node)
    return node


_OWN_KEY = re.compile(r"^[a-z_]+(\.[a-z_0-9]+)+: ")


def validation_problems(
    exc: msgspec.ValidationError, raw: object, root: str = "config"
) -> list[str]:
    """The ``key.path: problem`` line of a config-like model's problem (``root`` for a
    problem of the whole file), from ``raw``, what was validated; also the injection
    settings'. msgspec stops at the first problem, so there is one, but a cross-field
    check that names its own key paths may give several lines."""
    problem = Problem.of(exc, raw)
    # Cross-field checks name their own key path, both values included, one problem a
    # line.
    if _OWN_KEY.match(problem.message):
        return problem.message.splitlines()
    return [problem.line(root)]


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's error on one line: where, then what (its own text spans several)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    what = getattr(exc, "problem", None) or str(exc).replace("\n", " ")
    return f"{where}: {clip(what, 200)}"


def load(
    path: Path | None, env: Mapping[str, str], overrides: Mapping[str, object] | None = None
) -> Config:
    """Read, expand and validate the config file (or the defaults when ``path`` is None).

    ``overrides`` (dotted key -> value, from command-line flags) replace the file's values
    before validation, so a flag is checked exactly as the key would be. Raises
    ``ConfigError`` listing every problem found.
    """
    raw: Any = {}
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError([f"config: file not found: {path}"]) from None
        except OSError as exc:
            raise ConfigError([f"config: cannot read {path}: {exc.strerror}"]) from exc
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError([f"config: invalid YAML in {path}{yaml_problem(exc)}"]) from exc
        if not isinstance(raw, dict):
            raise ConfigError(
                [f"config: expected a mapping at the top of {path}, got {type(raw).__name__}"]
            )
    problems: list[str] = []
    raw = _expand(raw, env, "", problems)
    for key, value in (overrides or {}).items():
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            child = node.get(part)
            node[part] = child = child if isinstance(child, dict) else {}
            node = child
        node[leaf] = value
    if path is not None:
        _resolve_paths(raw, path.parent)
    if "token" in raw:
        problems.append(f"token: unknown key (set env {ENV_TOKEN} or server.token_file)")
    token, token_problem = _token(raw, env)
    if token_problem:
        problems.append(token_problem)
    if problems:
        raise ConfigError(problems)
    if token is not None:
        raw["token"] = token
    try:
        return Config.validate(raw)
    except msgspec.ValidationError as exc:
        raise ConfigError(validation_problems(exc, raw)) from exc


# Every key naming a file or directory: relative values are relative to the config file's
# directory, as in Prometheus, so that the working directory of `run` does not matter.
_PATH_KEYS = (
    ("server", "token_file"),
    ("app", "memory_limit_file"),
    ("app", "http_config", "authorization", "credentials_file"),
    ("app", "http_config", "basic_auth", "password_file"),
    ("app", "http_config", "tls_config", "ca_file"),
    ("app", "http_config", "tls_config", "cert_file"),
    ("app", "http_config", "tls_config", "key_file"),
    ("state_dir",),
)


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    """Make the relative paths (and ``rules.files`` globs) in ``raw`` relative to ``base``.

    Values of the wrong type are left alone for validation to report.
    """

    def join(value: Any) -> Any:
        if isinstance(value, str) and value.strip() and not Path(value).is_absolute():
            return str(base / value)
        return value

    for keys in _PATH_KEYS:
        node: Any = raw
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and keys[-1] in node:
            node[keys[-1]] = join(node[keys[-1]])
    rules = raw.get("rules")
    if isinstance(rules, dict) and isinstance(rules.get("files"), list):
        rules["files"] = [join(v) for v in rules["files"]]


def _token(raw: dict[str, Any], env: Mapping[str, str]) -> tuple[str | None, str | None]:
    server = raw.get("server")
    file = server.get("token_file") if isinstance(server, dict) else None
    if ENV_TOKEN in env:
        if file is not None:
            return None, f"server.token_file: set together with env {ENV_TOKEN}; choose one"
        if not env[ENV_TOKEN].strip():
            return None, f"env {ENV_TOKEN}: empty token; unset it or give a token"
        return env[ENV_TOKEN].strip(), None
    if file is None:
        return None, None
    try:
        text = Path(str(file)).read_text(encoding="utf-8").strip()
    except OSError as exc:
        return None, f"server.token_file: cannot read {file}: {exc.strerror}"
    if not text:
        return None, f"server.token_file: {file} is empty"
    return text, None
