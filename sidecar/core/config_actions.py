"""Config sections of the action path: calls to the app, routes, the breaker, reconciling.

Part of the config's sections (``config`` holds the rest and the whole ``Config``); the
field types and the section base are in ``config_fields``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from msgspec import Meta, field

from sidecar.core.config_fields import (
    ByteSize,
    ConfigModel,
    Duration,
    Positive,
    PositiveDuration,
    RetryConfig,
)
from sidecar.core.durations import format_duration

__all__ = ["ActionsConfig", "BreakerConfig", "ReconcileConfig", "RouteConfig"]


class RouteConfig(ConfigModel, kw_only=True, frozen=True):
    """Alert labels -> action; the first route that matches wins."""

    match: dict[str, str] = field(default_factory=dict)
    match_re: dict[str, str] = field(default_factory=dict)
    action: Literal["circuit_break", "cache_flush", "none"]
    cooldown: Duration | None = None
    evidence: bool = False
    """Capture the app's profiles when a matching alert fires, as the alert label
    evidence: 'true' asks (docs/evidence.md); off: profiling costs the app."""

    def __post_init__(self) -> None:
        for name, pattern in self.match_re.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex for label {name}: {pattern!r}: {exc}") from exc


class ReconcileConfig(ConfigModel, frozen=True):
    """How the app's circuit is kept at the state the breaker decided."""

    initial_backoff: PositiveDuration = PositiveDuration(0.5)
    """First wait before a circuit call is sent again after it failed."""
    max_backoff: PositiveDuration = PositiveDuration(30.0)
    """Cap on the wait between re-sends, which go on until the app confirms: short enough
    that an app back from an outage is protected within half a minute, long enough that a
    dead app costs two calls a minute."""
    interval: PositiveDuration = PositiveDuration(30.0)
    """How often the app's state endpoint (app.state_path) is read and a disagreement
    corrected: a cheap GET, twice a scrape interval."""

    def __post_init__(self) -> None:
        if self.max_backoff < self.initial_backoff:
            raise ValueError(
                f"actions.reconcile.max_backoff: must not be below "
                f"actions.reconcile.initial_backoff ({format_duration(self.initial_backoff)}), "
                f"got {format_duration(self.max_backoff)}"
            )


_DEFAULT_COOLDOWNS: dict[Literal["circuit_break", "cache_flush"], Duration] = {
    "cache_flush": Duration(300.0),
    "circuit_break": Duration(0.0),
}


class ActionsConfig(ConfigModel, frozen=True):
    """Calls to the app."""

    timeout: PositiveDuration = PositiveDuration(2.0)
    """One call; a breaker must act fast."""
    retry: RetryConfig = field(
        default_factory=lambda: RetryConfig.validate(
            {"attempts": 4, "initial_backoff": "200ms", "max_backoff": "5s", "max_elapsed": "20s"}
        )
    )
    """Rides out an app restart without hammering it."""
    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)
    """Circuit calls are re-sent until the app confirms them."""
    cooldowns: dict[Literal["circuit_break", "cache_flush"], Duration] = field(
        default_factory=lambda: dict(_DEFAULT_COOLDOWNS)
    )
    """A flush at most once per 5m: flushing is cheap but refills cost the app."""
    routes: list[RouteConfig] = field(default_factory=list)
    """None by default: each rule names its action with its 'action' label."""
    dedupe_ttl: Duration = Duration(86400.0)
    """How long an alert instance is remembered as handled: well past Alertmanager's
    default repeat_interval (4h), so that repeats are never re-acted on."""
    dedupe_max: Positive = 10000
    """Cap on remembered alert instances (oldest forgotten first): bounds memory and
    journal size against a flood of distinct alerts."""
    journal_max_entries: Positive = 1000
    """The journal is compacted to its live state past this many lines: bounded on disk,
    and a restart replays it in milliseconds."""
    journal_max_bytes: ByteSize = ByteSize(16 * 1024 * 1024)
    """The journal is also compacted past this size: a few deliveries of large payloads
    (up to server.max_body_bytes each) must not fill the state volume."""
    drain_timeout: Duration = Duration(5.0)
    """At shutdown, in-flight calls get this long before they are cancelled (they stay in
    the journal and run again at the next start); below server.shutdown_grace."""


class BreakerConfig(ConfigModel, frozen=True):
    """The circuit state machine."""

    min_open: Duration = Duration(60.0)
    """Long enough for the app to shed load; Kubernetes probes run every 10s."""
    max_open: Duration = Duration(1800.0)
    """Cap on a grown open time: 30m, then retry."""
    probation: Duration = Duration(600.0)
    """Opening again this soon after a reset doubles the open time."""
    jitter: Annotated[float, Meta(ge=0, le=1)] = 0.1
    """A grown open time is stretched by up to this fraction, so that the sidecars of a
    fleet do not reset their apps in lockstep."""
    check_interval: PositiveDuration = PositiveDuration(5.0)
    """How often the automatic reset is re-checked: a small part of min_open."""
    dry_run: bool = False
    """Log and count every decision, call nothing: for a first rollout."""

    def __post_init__(self) -> None:
        if self.max_open < self.min_open:
            raise ValueError(
                f"breaker.max_open: must not be below breaker.min_open "
                f"({format_duration(self.min_open)}), got {format_duration(self.max_open)}"
            )
