"""Config sections of the action path: calls to the app, routes, the breaker, reconciling.

Part of the config's sections (``config`` holds the rest and the whole ``Config``); the
field types and the section base are in ``config_fields``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ByteSize, Field, model_validator

from sidecar.core.config_fields import (
    ConfigModel,
    Duration,
    Positive,
    PositiveDuration,
    RetryConfig,
)
from sidecar.core.durations import format_duration

__all__ = ["ActionsConfig", "BreakerConfig", "ReconcileConfig", "RouteConfig"]


class RouteConfig(ConfigModel):
    """Alert labels -> action; the first route that matches wins."""

    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    action: Literal["circuit_break", "cache_flush", "none"]
    cooldown: Duration | None = None
    evidence: bool = Field(
        False,
        description="Capture the app's profiles when a matching alert fires, as the alert "
        "label evidence: 'true' asks (docs/evidence.md); off: profiling costs the app.",
    )

    @model_validator(mode="after")
    def _check(self) -> RouteConfig:
        for name, pattern in self.match_re.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex for label {name}: {pattern!r}: {exc}") from exc
        return self


class ReconcileConfig(ConfigModel):
    """How the app's circuit is kept at the state the breaker decided."""

    initial_backoff: PositiveDuration = Field(
        0.5, description="First wait before a circuit call is sent again after it failed."
    )
    max_backoff: PositiveDuration = Field(
        30.0,
        description="Cap on the wait between re-sends, which go on until the app confirms: "
        "short enough that an app back from an outage is protected within half a minute, "
        "long enough that a dead app costs two calls a minute.",
    )
    interval: PositiveDuration = Field(
        30.0,
        description="How often the app's state endpoint (app.state_path) is read and a "
        "disagreement corrected: a cheap GET, twice a scrape interval.",
    )

    @model_validator(mode="after")
    def _check(self) -> ReconcileConfig:
        if self.max_backoff < self.initial_backoff:
            raise ValueError(
                f"actions.reconcile.max_backoff: must not be below "
                f"actions.reconcile.initial_backoff ({format_duration(self.initial_backoff)}), "
                f"got {format_duration(self.max_backoff)}"
            )
        return self


_DEFAULT_COOLDOWNS: dict[Literal["circuit_break", "cache_flush"], float] = {
    "cache_flush": 300.0,
    "circuit_break": 0.0,
}


class ActionsConfig(ConfigModel):
    """Calls to the app."""

    timeout: PositiveDuration = Field(2.0, description="One call; a breaker must act fast.")
    retry: RetryConfig = Field(
        default_factory=lambda: RetryConfig.model_validate(
            {"attempts": 4, "initial_backoff": "200ms", "max_backoff": "5s", "max_elapsed": "20s"}
        ),
        description="Rides out an app restart without hammering it.",
    )
    reconcile: ReconcileConfig = Field(
        default_factory=ReconcileConfig,
        description="Circuit calls are re-sent until the app confirms them.",
    )
    cooldowns: dict[Literal["circuit_break", "cache_flush"], Duration] = Field(
        default_factory=lambda: dict(_DEFAULT_COOLDOWNS),
        description="A flush at most once per 5m: flushing is cheap but refills cost the app.",
    )
    routes: list[RouteConfig] = Field(
        default_factory=list,
        description="None by default: each rule names its action with its 'action' label.",
    )
    dedupe_ttl: Duration = Field(
        86400.0,
        description="How long an alert instance is remembered as handled: well past "
        "Alertmanager's default repeat_interval (4h), so that repeats are never re-acted on.",
    )
    dedupe_max: Positive = Field(
        10000,
        description="Cap on remembered alert instances (oldest forgotten first): bounds "
        "memory and journal size against a flood of distinct alerts.",
    )
    journal_max_entries: Positive = Field(
        1000,
        description="The journal is compacted to its live state past this many lines: "
        "bounded on disk, and a restart replays it in milliseconds.",
    )
    journal_max_bytes: ByteSize = Field(
        ByteSize(16 * 1024 * 1024),
        gt=0,
        description="The journal is also compacted past this size: a few deliveries of "
        "large payloads (up to server.max_body_bytes each) must not fill the state volume.",
    )
    drain_timeout: Duration = Field(
        5.0,
        description="At shutdown, in-flight calls get this long before they are cancelled "
        "(they stay in the journal and run again at the next start); below server.shutdown_grace.",
    )


class BreakerConfig(ConfigModel):
    """The circuit state machine."""

    min_open: Duration = Field(
        60.0, description="Long enough for the app to shed load; Kubernetes probes run every 10s."
    )
    max_open: Duration = Field(1800.0, description="Cap on a grown open time: 30m, then retry.")
    probation: Duration = Field(
        600.0, description="Opening again this soon after a reset doubles the open time."
    )
    jitter: float = Field(
        0.1,
        ge=0,
        le=1,
        description="A grown open time is stretched by up to this fraction, so that the "
        "sidecars of a fleet do not reset their apps in lockstep.",
    )
    check_interval: PositiveDuration = Field(
        5.0, description="How often the automatic reset is re-checked: a small part of min_open."
    )
    dry_run: bool = Field(
        False, description="Log and count every decision, call nothing: for a first rollout."
    )

    @model_validator(mode="after")
    def _check(self) -> BreakerConfig:
        if self.max_open < self.min_open:
            raise ValueError(
                f"breaker.max_open: must not be below breaker.min_open "
                f"({format_duration(self.min_open)}), got {format_duration(self.max_open)}"
            )
        return self
