"""Rule groups at run time: built from the loaded files, shared, swapped by a reload.

``runtime_groups`` builds a sidecar's groups once; a ``RuleSet`` holds them for the
engine, the breaker's condition, the rules API and the status page, and a reload swaps
them in it, carrying the alerts' state over (``carry_state``) as Prometheus's does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sidecar.core.config import RulesConfig
from sidecar.rules.alerting import AlertingRule, RecordingRule, Rule
from sidecar.rules.rulefmt import GroupSpec

__all__ = ["Group", "RuleSet", "build_groups", "carry_state", "runtime_groups"]


@dataclass(eq=False)
class Group:
    """A rule group at run time: its rules' state and its last evaluation."""

    spec: GroupSpec
    interval_ms: int
    rules: list[Rule]
    evaluation_s: float = 0.0
    last_evaluation_ms: int | None = None
    failed: list[str] = field(default_factory=list)
    _alerting: list[AlertingRule] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # The rules never change after loading; each evaluation asks for these.
        self._alerting = [r for r in self.rules if isinstance(r, AlertingRule)]

    @property
    def key(self) -> str:
        """``file;name``."""
        return self.spec.key

    def origin(self, index: int) -> str:
        """The store origin of the rule's output: staleness is decided per rule."""
        return f"rule:{self.key}#{index}"

    def alerting(self) -> list[AlertingRule]:
        """The group's alerting rules."""
        return self._alerting


def build_groups(
    specs: Sequence[GroupSpec],
    default_interval_ms: int,
    external_labels: Mapping[str, str],
    external_url: str,
    restored: bool,
    *,
    subquery_step_ms: int | None = None,
) -> list[Group]:
    """Run-time groups for loaded specs; ``restored`` False holds ALERTS until restored.

    ``subquery_step_ms`` is the step of a subquery that names none, by default
    ``default_interval_ms`` (Prometheus's global ``evaluation_interval``).
    """
    step = default_interval_ms if subquery_step_ms is None else subquery_step_ms
    groups = []
    for spec in specs:
        rules: list[Rule] = []
        for r in spec.rules:
            if r.kind == "record":
                rules.append(RecordingRule(r, subquery_step_ms=step))
            else:
                rules.append(
                    AlertingRule(
                        r,
                        subquery_step_ms=step,
                        external_labels=dict(external_labels),
                        external_url=external_url,
                        restored=restored,
                    )
                )
        groups.append(Group(spec, spec.interval_ms or default_interval_ms, rules))
    return groups


def carry_state(old: Sequence[Group], new: Sequence[Group]) -> None:
    """Give ``new`` groups the alert state of the ``old`` ones, as Prometheus's reload
    does: same group key, same alert name (the n-th of that name to the n-th)."""
    by_key = {g.key: g for g in old}
    for g in new:
        previous = by_key.get(g.key)
        if previous is None:
            continue
        g.last_evaluation_ms = previous.last_evaluation_ms
        g.evaluation_s = previous.evaluation_s
        olds: dict[str, list[AlertingRule]] = {}
        for r in previous.alerting():
            olds.setdefault(r.name, []).append(r)
        for r in g.alerting():
            same = olds.get(r.name)
            if same:
                was = same.pop(0)
                r.active, r.restored = was.active, was.restored


def runtime_groups(specs: Sequence[GroupSpec], cfg: RulesConfig) -> list[Group]:
    """The run-time groups of a sidecar: built once, shared by the engine, the breaker's
    condition, the rules API and the status page."""
    return build_groups(
        specs,
        round(cfg.evaluation_interval * 1000),
        cfg.external_labels,
        cfg.external_url or "",
        restored=False,
    )


class RuleSet:
    """The running rule groups, shared: the engine evaluates them, the breaker's condition,
    the rules API and the status page read them, and a reload swaps them.

    ``groups`` is one list for the sidecar's life, replaced in place, so every holder sees
    the new groups at once; ``changed`` tells the engine to restart its group tasks.
    """

    def __init__(self, groups: Sequence[Group]) -> None:
        self.groups = list(groups)
        self.changed = asyncio.Event()

    def replace(self, groups: Sequence[Group]) -> None:
        """Swap the groups in (no await: readers see the old ones or the new ones)."""
        self.groups[:] = groups
        self.changed.set()
