"""``leak-sidecar check-target URL``: which rules can evaluate against a live app.

Scrapes ``URL`` once as the sidecar would (``scrape.fetch``, ``flatten``, then
``scrape.metric_relabel_configs``), loads the configured rules (the packaged pack by
default) and prints, per alerting or recording rule, whether the metrics it selects are
there. A rule is judged on its expression's shape, not on one name at a time:
``a or b`` needs either side, ``a unless b`` only ``a``, any other operator both sides,
so the pack's ``goroutines or go_goroutines`` rule is ready with either name. The
sidecar's own ``leak_sidecar_*`` series count as present, except
``leak_sidecar_app_memory_limit_bytes``, which exists only when the config gives a
memory limit.

Exit codes: 0 every rule can evaluate, 1 some cannot (each is listed with what it
lacks), 2 the config or the rule files are invalid or the target cannot be scraped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import aiohttp
import promql_parser as pp

from sidecar.core.config import Config
from sidecar.core.errors import RuleError, ScrapeError
from sidecar.core.model import metric_name
from sidecar.core.outbound import Outbound
from sidecar.rules.files import expand_patterns, load_rules, rule_patterns
from sidecar.scrape.fetch import fetch
from sidecar.scrape.flatten import flatten
from sidecar.scrape.relabel import Relabeller
from sidecar.web.thresholds import MEMORY_LIMIT_METRIC

__all__ = ["check_target", "missing_inputs"]

_OWN = "leak_sidecar_"
_MEMORY_LIMIT = MEMORY_LIMIT_METRIC


def missing_inputs(expr: str, present: set[str]) -> list[str]:
    """The metric names ``expr`` lacks to return anything; empty when it can evaluate."""
    return sorted(set(_missing(pp.parse(expr), present)))


def _missing(node: Any, present: set[str]) -> list[str]:
    if isinstance(node, pp.VectorSelector):
        return [] if node.name is None or node.name in present else [node.name]
    if isinstance(node, pp.MatrixSelector):
        return _missing(node.vector_selector, present)
    if isinstance(node, pp.BinaryExpr):
        lhs, rhs = _missing(node.lhs, present), _missing(node.rhs, present)
        op = str(node.op)
        if op == "or":
            return lhs + rhs if lhs and rhs else []
        if op == "unless":
            return lhs
        return lhs + rhs
    if isinstance(node, pp.Call):
        return [n for arg in node.args for n in _missing(arg, present)]
    if isinstance(node, (pp.AggregateExpr, pp.ParenExpr, pp.UnaryExpr, pp.SubqueryExpr)):
        return _missing(node.expr, present)
    return []  # literals


async def _scrape(cfg: Config, url: str) -> set[str]:
    scrape = cfg.scrape
    async with aiohttp.ClientSession() as session:
        body = await fetch(
            session,
            url,
            within=scrape.timeout,
            limit=int(scrape.max_body_bytes),
            outbound=Outbound(cfg.app.http_config),
        )
    flat = flatten(body, scrape)
    samples = Relabeller(scrape.metric_relabel_configs).apply(flat.samples).samples
    return {metric_name(labels) for labels in samples}


def _own(cfg: Config, names: Iterable[str]) -> set[str]:
    has_limit = cfg.app.memory_limit_bytes is not None or cfg.app.memory_limit_file is not None
    return {n for n in names if n.startswith(_OWN) and (n != _MEMORY_LIMIT or has_limit)}


def check_target(cfg: Config, url: str | None, out: TextIO, err: TextIO) -> int:
    """Print which rules can evaluate against ``url`` (default: the configured app)."""
    target = url or cfg.app.expvar_url
    try:
        files, _ = expand_patterns(rule_patterns(cfg.rules.files))
        groups = load_rules(files)
    except RuleError as exc:
        print(f"rules: {exc}", file=err)
        return 2
    try:
        scraped = asyncio.run(_scrape(cfg, target))
    except ScrapeError as exc:
        print(f"check-target: {target}: {exc}", file=err)
        return 2
    rules = [r for g in groups for r in g.rules]
    present = scraped | _own(cfg, (n for r in rules for n in r.query.metric_names))
    print(f"{target}: {len(scraped)} metric names after relabelling", file=out)
    blind = _report(((r.name, r.expr) for r in rules), present, out)
    if blind:
        print(
            f"{blind} of {len(rules)} rules cannot evaluate: map the app's names onto "
            "theirs with scrape.metric_relabel_configs (docs/relabel.md)",
            file=out,
        )
    return 1 if blind else 0


def _report(rules: Iterable[tuple[str, str]], present: set[str], out: TextIO) -> int:
    blind = 0
    listed: Sequence[tuple[str, str]] = list(rules)
    width = max((len(name) for name, _ in listed), default=0)
    for name, expr in listed:
        lacks = missing_inputs(expr, present)
        if lacks:
            blind += 1
            hint = " (set app.memory_limit_bytes or _file)" if _MEMORY_LIMIT in lacks else ""
            print(f"MISSING {name:<{width}}  lacks {', '.join(lacks)}{hint}", file=out)
        else:
            print(f"OK      {name}", file=out)
    return blind
