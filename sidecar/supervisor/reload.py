"""Reload without a restart: SIGHUP and ``POST /-/reload``, as in Prometheus.

A reload re-reads the config file and the rule files and validates all of it as at
start. Then, in two phases:

1. build: the rule groups, the relabeller (``scrape.metric_relabel_configs``) and the
   action router (``actions.routes``, ``actions.cooldowns``, ``rules.external_labels``
   and ``fleet.forward.instance``: ``actions.path.build_router``, as at start).
   Any problem here, or in the files, changes nothing: the reason is logged
   (``config.reload_failed``) and answered, and the old config keeps running.
2. apply: in one step of the event loop, nothing in it can fail, every stage takes its
   new settings (``Stages.apply``) and the new groups are swapped in, so no stage, API or
   page ever sees a mix of the old config and the new.

What a reload applies in place is listed in ``APPLIED``: the rules and how they are
evaluated, every scrape setting, the app's credentials and TLS, the action routes,
cooldowns, timeouts, retries and bounds, and the breaker's open times. State that must
survive does: the breaker's circuit, the journal, the dedupe memory, the reconciler's
intent and every alert's ``for`` progress (same group, same alert name).

Every other changed key is held by something built once at start (the listening socket,
the state directory's lock, the store's size, the log setup, the delivery destination,
the app's URLs that the reconciler's intent names, the fleet budget and the forwarder
(every ``fleet.*`` key)): each is named, leaf by leaf, in
``config.reload_restart_needed`` and keeps its running value until the next start. So
is a rule range longer than the store keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import structlog
from prometheus_client import CollectorRegistry, Gauge

from sidecar.actions.path import ActionPath, build_router
from sidecar.actions.routing import Router
from sidecar.core.config import Config
from sidecar.core.config_load import load
from sidecar.core.errors import ConfigError, RuleError
from sidecar.core.outbound import Outbound
from sidecar.rules.engine import RuleEngine
from sidecar.rules.files import load_patterns, longest_range_ms, rule_patterns
from sidecar.rules.groups import RuleSet, carry_state, runtime_groups
from sidecar.rules.notify import Notifier
from sidecar.rules.promql import LOOKBACK_MS
from sidecar.scrape.relabel import Relabeller
from sidecar.scrape.scraper import Scraper

__all__ = ["APPLIED", "Reloader", "Stages", "changed_keys"]

log = structlog.get_logger(__name__)

#: The config keys a reload applies in place (a key, or everything under it).
APPLIED: tuple[str, ...] = (
    "app.http_config",
    "scrape",
    "rules.files",
    "rules.evaluation_interval",
    "rules.external_labels",
    "rules.external_url",
    "rules.resend_delay",
    "rules.outage_tolerance",
    "rules.for_grace_period",
    "actions.timeout",
    "actions.retry",
    "actions.reconcile",
    "actions.cooldowns",
    "actions.routes",
    "actions.dedupe_ttl",
    "actions.dedupe_max",
    "actions.journal_max_entries",
    "actions.journal_max_bytes",
    "breaker.min_open",
    "breaker.max_open",
    "breaker.probation",
    "breaker.jitter",
)


def _applies(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in APPLIED)


def changed_keys(old: msgspec.Struct, new: msgspec.Struct, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ, leaf by leaf within nested config models."""
    out: list[str] = []
    for name in old.__struct_fields__:
        a, b = getattr(old, name), getattr(new, name)
        if a == b:
            continue
        key = f"{prefix}{name}"
        if isinstance(a, msgspec.Struct) and type(a) is type(b):
            out.extend(changed_keys(a, b, key + "."))
        else:
            out.append(key)
    return out


def _get(model: msgspec.Struct, key: str) -> Any:
    value: Any = model
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _put(model: msgspec.Struct, parts: Sequence[str], value: Any) -> Any:
    head, *rest = parts
    inner = value if not rest else _put(getattr(model, head), rest, value)
    return msgspec.structs.replace(model, **{head: inner})


@dataclass(frozen=True, slots=True)
class Stages:
    """The running stages that hold config a reload applies."""

    outbound: Outbound
    scraper: Scraper
    engine: RuleEngine
    notifier: Notifier
    path: ActionPath

    def apply(self, cfg: Config, relabel: Relabeller, router: Router) -> None:
        """Hand each stage its part of ``cfg``; assignments only, nothing here can fail."""
        self.outbound.reconfigure(cfg.app.http_config)
        self.scraper.reconfigure(cfg.scrape, relabel)
        self.engine.reconfigure(cfg.rules)
        self.notifier.reconfigure(cfg.actions.retry)
        self.path.reconfigure(cfg, router)


class Reloader:
    """Reloads one sidecar's config and rules; call it, get None or the reason it failed."""

    def __init__(
        self,
        cfg: Config,
        rules: RuleSet,
        *,
        config_path: Path | None,
        env: Mapping[str, str],
        retention_ms: int,
        registry: CollectorRegistry,
        clock: Callable[[], float],
    ) -> None:
        self.cfg = cfg
        """The running config: the applied keys as last reloaded, the others as at start."""
        self.rules = rules
        self.stages: Stages | None = None
        """Set by the supervisor once the stages run; before that only the rules reload."""
        self._path = config_path
        self._env = env
        self._retention_ms = retention_ms
        self._clock = clock
        self._ok = Gauge(
            "leak_sidecar_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful (Prometheus's "
            "prometheus_config_last_reload_successful).",
            registry=registry,
        )
        self._ok.set(1)
        self._success = Gauge(
            "leak_sidecar_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration load, the start included.",
            registry=registry,
        )
        self._success.set(clock())

    def __call__(self) -> str | None:
        """Reload; None once the new config runs, else why the old one still does."""
        try:
            new = load(self._path, self._env) if self._path is not None else self.cfg
            specs = load_patterns(rule_patterns(new.rules.files))
        except ConfigError as exc:
            return self._failed("; ".join(exc.problems))
        except RuleError as exc:
            return self._failed(str(exc))
        changed = changed_keys(self.cfg, new)
        restart = [k for k in changed if not _applies(k)]
        running = new
        for key in restart:
            running = _put(running, key.split("."), _get(self.cfg, key))
        wanted_ms = longest_range_ms(specs) + LOOKBACK_MS
        if wanted_ms > self._retention_ms:
            restart.append("store retention (a rule reads further back than the store keeps)")
        try:
            groups = runtime_groups(specs, running.rules)
            relabel = Relabeller(running.scrape.metric_relabel_configs)
            router = build_router(running)
        except (RuleError, ValueError) as exc:
            return self._failed(str(exc))
        # Applied from here on in one step: nothing below awaits or raises.
        carry_state(self.rules.groups, groups)
        self.rules.replace(groups)
        if self.stages is not None:
            self.stages.apply(running, relabel, router)
        self.cfg = running
        self._ok.set(1)
        self._success.set(self._clock())
        if restart:
            log.warning("config.reload_restart_needed", keys=restart)
        log.info(
            "config.reloaded",
            applied=[k for k in changed if _applies(k)],
            groups=len(groups),
            rules=sum(len(g.spec.rules) for g in groups),
        )
        return None

    def _failed(self, problem: str) -> str:
        self._ok.set(0)
        log.error("config.reload_failed", problem=problem)
        return problem
