"""The import direction of the package: lower layers never import higher ones.

The tiers follow the data flow of DESIGN.md: values and errors at the bottom, then
config and the store, the stages that produce and evaluate data, the action path, the
adapters that join stages, the supervisor that wires them, and the commands on top. A
module may import its own tier or any lower one.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "sidecar"

TIERS: list[set[str]] = [
    {"errors", "model", "gofmt", "history", "logs", "server", "yamlnode", "template_lex",
     "demo_faults", "demo_sim", "promql.gomath"},
    {"config", "store", "expvar_json", "journal", "actions", "seriesdesc", "template_parse",
     "promql.values", "promql.regression"},
    {"retry", "routing", "memstats", "template_funcs", "templates", "svgchart", "breaker",
     "promql", "promql.compile", "promql.eval", "promql.selectors", "promql.rangefuncs",
     "promql.aggregate", "promql.binary", "promql.functions", "promql.labelfuncs",
     "promql.dates"},
    {"expvar", "actuator", "notify", "rulefile", "status", "status_render", "demo_app"},
    {"scrape", "export", "alerting", "dispatch"},
    {"rulestate", "rules", "receiver", "ruletest_format"},
    {"rules_api", "ruletest", "actions_api"},
    {"action_path"},
    {"view"},
    {"supervisor"},
    {"demo", "cli", "__main__"},
]  # fmt: skip


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sidecar"):
            if node.module == "sidecar":
                found.update(a.name for a in node.names if a.name != "__version__")
            else:
                found.add(node.module.removeprefix("sidecar."))
        elif isinstance(node, ast.Import):
            found.update(
                a.name.removeprefix("sidecar.") for a in node.names if a.name.startswith("sidecar.")
            )
    return found


def test_every_module_has_a_tier() -> None:
    """A new module is placed in a tier on purpose, not by accident."""
    modules = {_module(p) for p in PACKAGE.rglob("*.py")} - {""}
    tiered = set().union(*TIERS)
    assert modules - tiered == set()
    assert tiered - modules == set()


def test_lower_tiers_never_import_higher_ones() -> None:
    """Imports point down the data flow (or sideways), never up."""
    tier = {m: i for i, names in enumerate(TIERS) for m in names}
    upward = []
    for path in PACKAGE.rglob("*.py"):
        mod = _module(path)
        if not mod:
            continue
        for dep in _imports(path):
            if tier[dep] > tier[mod]:
                upward.append(f"{mod} (tier {tier[mod]}) imports {dep} (tier {tier[dep]})")
    assert upward == []
