"""Alert labels -> action: config routes first, then the alert's own ``action`` label.

A rule says what it wants with the label ``action`` (``circuit_break`` or
``cache_flush``). Config routes (``actions.routes``) can match other labels and
override it: ``match`` compares label values for equality, ``match_re`` with anchored
regular expressions (as Alertmanager does), a missing label matches as the empty
string, and the first route that matches wins; a route with ``action: none`` mutes
the alerts it matches. An ``action`` label with any other value is an invalid route:
counted and logged by the receiver, never acted on.

Each decision carries the cooldown that applies and the key it is kept under, so that
a route with its own ``cooldown`` is limited separately from the action's default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from sidecar.config import ActionsConfig, RouteConfig

__all__ = ["ACTION_LABEL", "Route", "RouteAction", "Router"]

ACTION_LABEL = "action"
"""The alert label through which a rule names its action."""

RouteAction = Literal["circuit_break", "cache_flush", "none", "invalid", "foreign"]

_LABEL_ACTIONS: dict[str, RouteAction] = {
    "circuit_break": "circuit_break",
    "cache_flush": "cache_flush",
}


@dataclass(frozen=True, slots=True)
class Route:
    """Where one alert goes: the action, the cooldown that limits it, and why."""

    action: RouteAction
    cooldown: float = 0.0
    cooldown_key: str = ""
    matched: str = ""
    """``route[<index>]`` or ``label``: what decided (for logs)."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    index: int
    match: tuple[tuple[str, str], ...]
    match_re: tuple[tuple[str, re.Pattern[str]], ...]
    config: RouteConfig

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k, "") == v for k, v in self.match) and all(
            p.fullmatch(labels.get(k, "")) is not None for k, p in self.match_re
        )


class Router:
    """Decides the action for an alert from its labels; built once from config."""

    def __init__(self, cfg: ActionsConfig, identity: Mapping[str, str] | None = None) -> None:
        # The sidecar's own external labels (e.g. pod): an alert that carries one of them
        # with another value is about another pod, delivered here by a fleet route.
        self._identity = tuple(sorted((identity or {}).items()))
        self._cooldowns: dict[str, float] = {str(k): v for k, v in cfg.cooldowns.items()}
        self._routes = tuple(
            _Compiled(
                index=i,
                match=tuple(sorted(r.match.items())),
                # Anchored as Alertmanager's match_re; compiled once, validated by config.
                match_re=tuple((k, re.compile(v)) for k, v in sorted(r.match_re.items())),
                config=r,
            )
            for i, r in enumerate(cfg.routes)
        )

    def route(self, labels: Mapping[str, str]) -> Route:
        """The route for one alert's labels; ``invalid`` for an unknown ``action`` label,
        ``foreign`` for an alert about another pod (never acted on)."""
        for k, v in self._identity:
            got = labels.get(k)
            if got is not None and got != v:
                return Route("foreign", matched=f"label {k}")
        for r in self._routes:
            if r.matches(labels):
                action = r.config.action
                if action == "none":
                    return Route("none", matched=f"route[{r.index}]")
                default = self._cooldowns.get(action, 0.0)
                cooldown = r.config.cooldown if r.config.cooldown is not None else default
                # A route with its own cooldown is limited on its own; otherwise all
                # alerts asking for the same action share the action's cooldown.
                key = f"route[{r.index}]" if r.config.cooldown is not None else action
                return Route(action, cooldown, key, f"route[{r.index}]")
        value = labels.get(ACTION_LABEL)
        if value is None or value == "none":
            return Route("none", matched="label" if value is not None else "")
        wanted = _LABEL_ACTIONS.get(value, "invalid")
        if wanted == "invalid":
            return Route("invalid", matched="label")
        return Route(wanted, self._cooldowns.get(wanted, 0.0), wanted, "label")
