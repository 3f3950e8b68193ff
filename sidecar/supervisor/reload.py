"""Reload without a restart: SIGHUP and ``POST /-/reload``, as in Prometheus.

A reload re-reads the config file and the rule files, validates all of it as at start,
and only then swaps the new rule groups in, in one step of the event loop: the engine,
the breaker's condition, the rules API and the status page see the old groups or the
new ones, never a mix. Alert state carries over (same group, same alert name), so a
pending alert keeps its ``for`` progress; the breaker, the journal and the for-state
file are not touched. On any problem nothing changes and the reason is logged
(``config.reload_failed``) and answered.

What a reload applies: the rule files, and ``rules.files``. Every other key is read at
start by a stage that holds it (listen address, state_dir, token, app URLs, routes,
thresholds...): a changed one is named in ``config.reload_restart_needed`` and keeps its
running value until the next start. So is a rule range longer than the store keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry, Gauge

from sidecar.core.config import Config
from sidecar.core.config_load import load
from sidecar.core.errors import ConfigError, RuleError
from sidecar.rules.files import load_patterns, longest_range_ms, rule_patterns
from sidecar.rules.groups import RuleSet, carry_state, runtime_groups
from sidecar.rules.promql import LOOKBACK_MS

__all__ = ["Reloader"]

log = structlog.get_logger(__name__)


class Reloader:
    """Reloads the rules of one sidecar; call it, get None or the reason it failed."""

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
        """The running config: the one loaded at start with the reloaded ``rules.files``."""
        self.rules = rules
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
        """Reload; None once the new rules run, else why the old ones still do."""
        try:
            new = load(self._path, self._env) if self._path is not None else self.cfg
            specs = load_patterns(rule_patterns(new.rules.files))
        except ConfigError as exc:
            return self._failed("; ".join(exc.problems))
        except RuleError as exc:
            return self._failed(str(exc))
        restart = _restart_needed(self.cfg, new)
        wanted_ms = longest_range_ms(specs) + LOOKBACK_MS
        if wanted_ms > self._retention_ms:
            restart.append("store retention (a rule reads further back than the store keeps)")
        if restart:
            log.warning("config.reload_restart_needed", keys=restart)
        # Built with the running rules settings: only the files are reloaded.
        groups = runtime_groups(specs, self.cfg.rules)
        carry_state(self.rules.groups, groups)
        self.rules.replace(groups)
        rules = self.cfg.rules.model_copy(update={"files": new.rules.files})
        self.cfg = self.cfg.model_copy(update={"rules": rules})
        self._ok.set(1)
        self._success.set(self._clock())
        log.info(
            "config.reloaded",
            groups=len(groups),
            rules=sum(len(g.spec.rules) for g in groups),
        )
        return None

    def _failed(self, problem: str) -> str:
        self._ok.set(0)
        log.error("config.reload_failed", problem=problem)
        return problem


def _restart_needed(old: Config, new: Config) -> list[str]:
    """The keys that differ between ``old`` and ``new``, except what a reload applies."""
    keys = [
        f"rules.{k}"
        for k in type(old.rules).model_fields
        if k != "files" and getattr(old.rules, k) != getattr(new.rules, k)
    ]
    keys.extend(
        k for k in type(old).model_fields if k != "rules" and getattr(old, k) != getattr(new, k)
    )
    return keys
