"""Both charts' values.yaml, values.schema.json and templates agree with each other.

The schema refuses unknown keys, so a key the templates read but the schema lacks could
never be set, and one the schema has but values.yaml lacks would be undocumented.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parent.parent
CHARTS = ["leak-sidecar", "leak-sidecar-injector"]
# Keys the schema allows that values.yaml leaves unset on purpose (its comments name them).
OPTIONAL = {
    "leak-sidecar": {"app.resources.claims", "sidecar.resources.claims"},
    "leak-sidecar-injector": {
        "resources.claims",
        "sidecar.resources.claims",
        "tls.certManager.issuerRef.kind",
        "tls.certManager.issuerRef.name",
        "tls.certManager.issuerRef.group",
    },
}


def schema_paths(schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Every key the schema names, as dotted paths, down to free-form objects."""
    out = set()
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        out.add(path)
        if sub.get("additionalProperties") is False:
            out |= schema_paths(sub, f"{path}.")
    return out


def value_paths(values: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> set[str]:
    """The keys values.yaml sets, as dotted paths, as deep as the schema closes objects."""
    out = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        out.add(path)
        sub = schema.get("properties", {}).get(key, {})
        if isinstance(value, dict) and sub.get("additionalProperties") is False:
            out |= value_paths(value, sub, f"{path}.")
    return out


def template_paths(chart: Path) -> set[str]:
    """Every .Values path the templates read (`$.Values` included)."""
    found = set()
    for template in (chart / "templates").iterdir():
        for path in re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", template.read_text()):
            found.add(path.strip("."))
    return found


@pytest.mark.parametrize("name", CHARTS)
def test_values_yaml_documents_every_schema_key(name: str) -> None:
    """values.yaml sets every key the schema allows (global and optional ones excepted)."""
    chart = ROOT / "charts" / name
    schema = json.loads((chart / "values.schema.json").read_text())
    values = yaml.safe_load((chart / "values.yaml").read_text())
    assert schema["additionalProperties"] is False
    assert value_paths(values, schema) == schema_paths(schema) - {"global"} - OPTIONAL[name]


@pytest.mark.parametrize("name", CHARTS)
def test_templates_read_only_keys_the_schema_allows(name: str) -> None:
    """Every .Values path a template reads is a key of the schema (or inside a free-form one)."""
    chart = ROOT / "charts" / name
    allowed = schema_paths(json.loads((chart / "values.schema.json").read_text()))
    closed = {a.rpartition(".")[0] for a in allowed if "." in a}
    unknown = []
    for path in sorted(template_paths(chart)):
        parts = path.split(".")
        prefixes = [".".join(parts[: i + 1]) for i in range(len(parts))]
        # Known, or below a key whose content the schema leaves free (a Kubernetes fragment).
        if path not in allowed and not any(p in allowed and p not in closed for p in prefixes):
            unknown.append(path)
    assert unknown == []


def test_a_misspelt_template_path_is_reported(tmp_path: Path) -> None:
    """The path collection sees `$.Values` and nested keys (so the check above can fail)."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "x.yaml").write_text(
        "{{ .Values.serviceMonitr.enabled }} {{ $.Values.sidecar.image.tag }}"
    )
    assert template_paths(tmp_path) == {"serviceMonitr.enabled", "sidecar.image.tag"}
