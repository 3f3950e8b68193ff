"""``scrape.metric_relabel_configs``: one Prometheus relabel config, validated as Prometheus does.

Syntax, defaults and checks follow Prometheus's ``model/relabel`` (v2.42): ``separator``
``;``, ``regex`` ``(.*)`` anchored at both ends, ``replacement`` ``$1``, ``action``
``replace`` (any case); the per-action checks raise Prometheus's own messages, so an
operator pasting a block from ``prometheus.yml`` gets the error Prometheus would give.
The regular expression is compiled once here, with RE2 (Go's syntax and semantics), and
the compiled form travels with the config; ``scrape.relabel`` applies it.
"""

from __future__ import annotations

import json
import re
from functools import cache, cached_property
from typing import Annotated, Any, Literal, Self, get_args

from msgspec import Meta, field

from sidecar.core.config_fields import ConfigModel, Plain, expect_str

__all__ = [
    "ACTIONS",
    "ActionName",
    "RegexError",
    "RelabelAction",
    "RelabelConfig",
    "compile_anchored",
]

RelabelAction = Literal[
    "replace",
    "keep",
    "drop",
    "keepequal",
    "dropequal",
    "hashmod",
    "labelmap",
    "labeldrop",
    "labelkeep",
    "lowercase",
    "uppercase",
]
ACTIONS: tuple[str, ...] = get_args(RelabelAction)
"""Every action Prometheus knows, in its own order."""

_DEFAULT_SEPARATOR = ";"
_DEFAULT_REGEX = "(.*)"
_DEFAULT_REPLACEMENT = "$1"

# Prometheus's relabelTarget; Go's \w is ASCII, hence re.ASCII.
_RELABEL_TARGET = re.compile(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$", re.ASCII)
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_NEEDS_TARGET = {"replace", "hashmod", "lowercase", "uppercase", "keepequal", "dropequal"}
_TARGET_IS_NAME = {"lowercase", "uppercase", "keepequal", "dropequal", "hashmod"}


class RegexError(ValueError):
    """RE2 refused a pattern; the text is RE2's own."""


@cache
def _re2() -> tuple[Any, Any]:
    """RE2 and its options, loaded by the first regex: 1.6 MiB a config without one saves."""
    import re2  # type: ignore[import-untyped]  # noqa: PLC0415

    options = re2.Options()
    options.log_errors = False
    return re2, options


def _q(text: str) -> str:
    """Go's ``%q`` for the texts a config holds."""
    return json.dumps(text, ensure_ascii=False)


def compile_anchored(pattern: str) -> Any:
    """``pattern`` anchored at both ends as Prometheus's ``NewRegexp`` anchors it (relabel
    configs and PromQL matchers alike), compiled by RE2; a refusal raises ``RegexError``."""
    re2, options = _re2()
    try:
        return re2.compile("^(?:" + pattern + ")$", options)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise RegexError(str(detail)) from exc


def _compile(pattern: str) -> Any:
    try:
        return compile_anchored(pattern)
    except RegexError as exc:
        raise ValueError(f"error parsing regexp {pattern!r}: {exc}") from exc


class ActionName(Plain, str):
    """A relabel action, in any case as Prometheus reads it, held in lower case."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Self:
        text = expect_str(value)
        if text.lower() not in ACTIONS:
            raise ValueError(f"unknown relabel action {_q(text)}")
        return cls(text.lower())


class SourceLabel(Plain, str):
    """A label name in ``source_labels``: Prometheus checks each as it reads it."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Self:
        name = expect_str(value)
        if not _LABEL_NAME.match(name):
            raise ValueError(f"{_q(name)} is not a valid label name")
        return cls(name)


class RelabelConfig(ConfigModel, dict=True, frozen=True):
    """One step of ``metric_relabel_configs``, as in ``prometheus.yml``."""

    source_labels: list[SourceLabel] = field(default_factory=list)
    """Prometheus's default: none, so the regex sees the empty string."""
    separator: str = _DEFAULT_SEPARATOR
    """Prometheus's default."""
    regex: str = _DEFAULT_REGEX
    """Prometheus's default; anchored at both ends, RE2 syntax."""
    modulus: Annotated[int, Meta(ge=0)] = 0
    """Only hashmod uses it, and must set it."""
    target_label: str = ""
    """Required by the actions that write one label."""
    replacement: str = _DEFAULT_REPLACEMENT
    """Prometheus's default: the first capture group."""
    action: ActionName = ActionName("replace")
    """Prometheus's default; any case."""

    def __post_init__(self) -> None:
        # Prometheus decodes the regex before it validates the rest: its error comes first.
        self.compiled  # noqa: B018 -- compiles (and keeps) the regex, or raises
        act, target = self.action, self.target_label
        if act == "hashmod" and self.modulus == 0:
            raise ValueError("relabel configuration for hashmod requires non-zero modulus")
        if act in _NEEDS_TARGET and not target:
            raise ValueError(
                f"relabel configuration for {act} action requires 'target_label' value"
            )
        if act == "replace" and not (
            _RELABEL_TARGET.match(target) if "$" in target else _LABEL_NAME.match(target)
        ):
            raise ValueError(f"{_q(target)} is invalid 'target_label' for {act} action")
        if act in _TARGET_IS_NAME and not _LABEL_NAME.match(target):
            raise ValueError(f"{_q(target)} is invalid 'target_label' for {act} action")
        if act in {"lowercase", "uppercase", "keepequal", "dropequal"} and (
            self.replacement != _DEFAULT_REPLACEMENT
        ):
            raise ValueError(f"'replacement' can not be set for {act} action")
        if act == "labelmap" and not _RELABEL_TARGET.match(self.replacement):
            raise ValueError(f"{_q(self.replacement)} is invalid 'replacement' for {act} action")
        if act in {"keepequal", "dropequal"} and (
            self.regex != _DEFAULT_REGEX or self.modulus or self.separator != _DEFAULT_SEPARATOR
        ):
            raise ValueError(
                f"{act} action requires only 'source_labels' and `target_label`, "
                "and no other fields"
            )
        if act in {"labeldrop", "labelkeep"} and (
            self.source_labels
            or target
            or self.modulus
            or self.separator != _DEFAULT_SEPARATOR
            or self.replacement != _DEFAULT_REPLACEMENT
        ):
            raise ValueError(f"{act} action requires only 'regex', and no other fields")

    @cached_property
    def compiled(self) -> Any:
        """The anchored RE2 regex, compiled once when the config was validated.

        A cached property, not a field: structs compare fields only, so two loads of one
        config stay equal (a reload must not see a change that is not there).
        """
        return _compile(self.regex)
