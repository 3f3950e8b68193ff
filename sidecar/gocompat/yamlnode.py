"""Strict, position-aware YAML decoding for rule files and rule test files.

Prometheus reads rule files with Go's yaml.v3 (unknown fields and duplicate keys are
errors, every error names its line) and ``promtool test rules`` reads test files with
yaml.v2's strict mode. PyYAML's plain ``safe_load`` forgets positions and resolves
scalars differently (``1e-5`` is a string to it, a float to Go), so both file kinds are
composed into PyYAML nodes and decoded here field by field, with Go's resolution rules
for the few scalar kinds the formats use and Go's error texts
(``line 3: field query_offset not found in type rulefmt.RuleGroup``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "MAX_FILE_BYTES",
    "Decoder",
    "YamlSyntaxError",
    "compose",
    "position",
]

MAX_FILE_BYTES = 8 * 1024 * 1024
"""Rule and test files are hand-written; anything larger is a mistake or an attack."""

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
# yaml.v2 and v3 resolve these plain scalars as floats (Go's yamlStyleFloat).
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL = {
    ".inf": math.inf,
    ".Inf": math.inf,
    ".INF": math.inf,
    "+.inf": math.inf,
    "+.Inf": math.inf,
    "+.INF": math.inf,
    "-.inf": -math.inf,
    "-.Inf": -math.inf,
    "-.INF": -math.inf,
    ".nan": math.nan,
    ".NaN": math.nan,
    ".NAN": math.nan,
}


class YamlSyntaxError(Exception):
    """The text is not YAML; the message is ``yaml: line N: problem``."""


def compose(text: str) -> Node | None:
    """Compose the first YAML document of ``text`` into nodes; ``None`` when empty."""
    try:
        for doc in yaml.compose_all(text, Loader=yaml.SafeLoader):
            return doc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise YamlSyntaxError(f"yaml: line {line}: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"yaml: {exc}") from exc
    except RecursionError:
        raise YamlSyntaxError("yaml: nesting too deep") from None
    return None


def position(node: Node | None) -> str:
    """``line:column`` of a node, 1-based as yaml.v3 prints them; ``0:0`` for a missing node."""
    if node is None:
        return "0:0"
    return f"{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "!!map"
    if isinstance(node, SequenceNode):
        return "!!seq"
    value = str(node.value)
    if isinstance(node, ScalarNode) and node.style is None:
        if value in _NULLS:
            return "!!null"
        if value in ("true", "false", "True", "False", "TRUE", "FALSE"):
            return "!!bool"
        if _INT.match(value) or _HEX.match(value):
            return "!!int"
        if _FLOAT.match(value) or value in _SPECIAL:
            return "!!float"
    return "!!str"


class Decoder:
    """Decodes composed nodes into plain values, collecting yaml-style errors as it goes.

    Like yaml.v3, a wrong type in one field does not stop the decoding of the others;
    ``errors`` holds one ``line N: problem`` each, in document order.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, node: Node, message: str) -> None:
        """Record an error at ``node``'s line."""
        self.errors.append(f"line {_line(node)}: {message}")

    def _cannot(self, node: Node, into: str) -> None:
        kind = _kind(node)
        shown = f" `{node.value}`" if isinstance(node, ScalarNode) else ""
        self.fail(node, f"cannot unmarshal {kind}{shown} into {into}")

    def is_null(self, node: Node | None) -> bool:
        """True for a missing node or an explicit YAML null."""
        return node is None or (isinstance(node, ScalarNode) and _kind(node) == "!!null")

    def mapping(self, node: Node, type_name: str, fields: frozenset[str]) -> dict[str, Node]:
        """A mapping with only ``fields`` as keys; others are errors naming ``type_name``."""
        if self.is_null(node):
            return {}
        if not isinstance(node, MappingNode):
            self._cannot(node, type_name)
            return {}
        out: dict[str, Node] = {}
        for key, knode, value in self.pairs(node):
            if key not in fields:
                self.fail(knode, f"field {key} not found in type {type_name}")
                continue
            out[key] = value
        return out

    def pairs(self, node: MappingNode) -> Iterator[tuple[str, Node, Node]]:
        """Key text, key node and value node of each entry; a repeated key is an error."""
        seen: dict[str, int] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, ScalarNode):
                self._cannot(knode, "string")
                continue
            key = str(knode.value)
            if key in seen:
                self.fail(knode, f'mapping key "{key}" already defined at line {seen[key]}')
                continue
            seen[key] = _line(knode)
            yield key, knode, vnode

    def sequence(self, node: Node | None, into: str) -> list[Node]:
        """The items of a sequence; null is empty."""
        if node is None or self.is_null(node):
            return []
        if not isinstance(node, SequenceNode):
            self._cannot(node, into)
            return []
        return list(node.value)

    def string(self, node: Node | None) -> str:
        """A scalar's text as written (Go decodes any scalar into a string field)."""
        if node is None or self.is_null(node):
            return ""
        if not isinstance(node, ScalarNode):
            self._cannot(node, "string")
            return ""
        return str(node.value)

    def string_map(self, node: Node | None) -> dict[str, str]:
        """A ``map[string]string``."""
        if node is None or self.is_null(node):
            return {}
        if not isinstance(node, MappingNode):
            self._cannot(node, "map[string]string")
            return {}
        return {k: self.string(v) for k, _, v in self.pairs(node)}

    def integer(self, node: Node | None) -> int:
        """An ``int`` field: decimal or hexadecimal."""
        if node is None or self.is_null(node):
            return 0
        if isinstance(node, ScalarNode) and node.style is None:
            text = str(node.value)
            if _INT.match(text):
                return int(text)
            if _HEX.match(text):
                return int(text, 16)
        self._cannot(node, "int")
        return 0

    def floating(self, node: Node | None) -> float:
        """A ``float64`` field, resolved as Go's YAML packages resolve plain scalars."""
        if node is None or self.is_null(node):
            return 0.0
        if isinstance(node, ScalarNode) and node.style is None:
            text = str(node.value)
            if text in _SPECIAL:
                return _SPECIAL[text]
            if _INT.match(text) or _FLOAT.match(text):
                return float(text)
            if _HEX.match(text):
                return float(int(text, 16))
        self._cannot(node, "float64")
        return 0.0
