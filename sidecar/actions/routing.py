"""Alert labels -> action: config routes first, then the alert's own ``action`` label.

A rule says what it wants with the label ``action`` (``circuit_break`` or
``cache_flush``). Config routes (``actions.routes``) can match other labels and
override it: ``match`` compares label values for equality, ``match_re`` with anchored
regular expressions (as Alertmanager does), a missing label matches as the empty
string, and the first route that matches wins; a route with ``action: none`` mutes
the alerts it matches. An ``action`` label with any other value is an invalid route:
counted and logged by the receiver, never acted on.

Each decision carries the cooldown that applies and the key it is kept under, so that
a route with its own ``cooldown`` is limited separately from the action's default. A
route may also ask for evidence (``evidence: true``); ``asks_evidence`` says so for the
evidence stage, which the supervisor hands it as a plain function.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from sidecar.core.config_actions import ActionsConfig, RouteConfig

__all__ = ["ACTION_LABEL", "Route", "RouteAction", "Router"]

ACTION_LABEL = "action"
"""The alert label through which a rule names its action."""

RouteAction = Literal["circuit_break", "cache_flush", "none", "invalid", "foreign"]


@dataclass(frozen=True, slots=True)
class Route:
    """Where one alert goes: the action, the cooldown that limits it, and why."""

    action: RouteAction
    cooldown: float = 0.0
    cooldown_key: str = ""
    matched: str = ""
    """``route[<index>]`` or ``label``: what decided (for logs)."""


_UNROUTED = Route("none")
_INVALID = Route("invalid", matched="label")


@dataclass(frozen=True, slots=True)
class _Compiled:
    match: tuple[tuple[str, str], ...]
    match_re: tuple[tuple[str, re.Pattern[str]], ...]
    route: Route
    """The decision, built once: it depends on config alone."""
    evidence: bool

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k, "") == v for k, v in self.match) and all(
            p.fullmatch(labels.get(k, "")) is not None for k, p in self.match_re
        )


def _decision(index: int, r: RouteConfig, cooldowns: Mapping[str, float]) -> Route:
    where = f"route[{index}]"
    if r.action == "none":
        return Route("none", matched=where)
    if r.cooldown is None:
        # All alerts asking for the same action share the action's cooldown.
        return Route(r.action, cooldowns.get(r.action, 0.0), r.action, where)
    # A route with its own cooldown is limited on its own.
    return Route(r.action, r.cooldown, where, where)


class Router:
    """Decides the action for an alert from its labels; built once from config."""

    def __init__(self, cfg: ActionsConfig, identity: Mapping[str, str] | None = None) -> None:
        # The sidecar's own external labels (e.g. pod): an alert that carries one of them
        # with another value is about another pod, delivered here by a fleet route.
        self._identity = tuple(sorted((identity or {}).items()))
        cooldowns = {str(k): v for k, v in cfg.cooldowns.items()}
        self._routes = tuple(
            _Compiled(
                match=tuple(sorted(r.match.items())),
                # Anchored as Alertmanager's match_re; compiled once, validated by config.
                match_re=tuple((k, re.compile(v)) for k, v in sorted(r.match_re.items())),
                route=_decision(i, r, cooldowns),
                evidence=r.evidence,
            )
            for i, r in enumerate(cfg.routes)
        )
        # What the alert's own ``action`` label decides, by its value.
        self._by_label: dict[str, Route] = {
            "none": Route("none", matched="label"),
            **{
                a: Route(a, cooldowns.get(a, 0.0), a, "label")
                for a in ("circuit_break", "cache_flush")
            },
        }

    def asks_evidence(self, labels: Mapping[str, str]) -> bool:
        """Whether the first config route that matches these labels sets ``evidence``."""
        for r in self._routes:
            if r.matches(labels):
                return r.evidence
        return False

    def route(self, labels: Mapping[str, str]) -> Route:
        """The route for one alert's labels; ``invalid`` for an unknown ``action`` label,
        ``foreign`` for an alert about another pod (never acted on)."""
        for k, v in self._identity:
            got = labels.get(k)
            if got is not None and got != v:
                return Route("foreign", matched=f"label {k}")
        for r in self._routes:
            if r.matches(labels):
                return r.route
        value = labels.get(ACTION_LABEL)
        if value is None:
            return _UNROUTED
        return self._by_label.get(value, _INVALID)
