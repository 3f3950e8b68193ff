"""Configuration: the sections of the one YAML file, as frozen msgspec structs.

Each section is a frozen ``core.validation.Model`` refusing unknown keys, converted
strictly; each field's docstring says why its default is what it is; a cross-field
check (``__post_init__``) names both values. The action path's sections are in
``config_actions``, ``evidence`` in ``config_evidence``, ``fleet`` in ``config_fleet``,
the app's ``http_config`` in ``config_http``; the field types (durations, URLs, paths,
sizes, secrets) and their checks in ``config_fields``; reading the file, the
environment and the token, and printing the first problem as ``key.path: problem``, in
``config_load``, which returns the ``Config`` that is then passed down.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from msgspec import Meta, field

from sidecar.core.config_actions import ActionsConfig, BreakerConfig
from sidecar.core.config_evidence import EvidenceConfig
from sidecar.core.config_fields import (
    BaseUrl,
    ByteSize,
    ConfigModel,
    Duration,
    Listen,
    Positive,
    PositiveDuration,
    RetryConfig,
    Secret,
    StateDir,
    Url,
    UrlPath,
    label_name,
)
from sidecar.core.config_fleet import FleetConfig
from sidecar.core.config_http import HttpClientConfig
from sidecar.core.config_relabel import RelabelConfig
from sidecar.core.durations import format_duration

__all__ = [
    "ENV_TOKEN",
    "AppConfig",
    "Config",
    "EvidenceConfig",
    "LogConfig",
    "MapConfig",
    "RulesConfig",
    "ScrapeConfig",
    "ServerConfig",
    "StoreConfig",
]

ENV_TOKEN = "LEAK_SIDECAR_TOKEN"  # noqa: S105 -- the variable's name, not a secret


_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class MapConfig(ConfigModel, frozen=True):
    """An expvar map exported as one metric with its keys as label values."""

    path: Annotated[str, Meta(min_length=1)]
    """Dotted path of the map in /debug/vars, e.g. 'caches'."""
    labels: Annotated[list[str], Meta(min_length=1)]
    """Label name for each nesting level, as client_golang's expvar collector."""
    name: str | None = None
    """Metric name; defaults to the sanitized path."""

    def __post_init__(self) -> None:
        for label in self.labels:
            if not _LABEL_NAME.match(label) or label.startswith("__"):
                raise ValueError(
                    f"expected a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting "
                    f"with __) for each of labels, got {label!r}"
                )
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"expected distinct label names, got {self.labels}")
        if self.name is not None and not _METRIC_NAME.match(self.name):
            raise ValueError(
                f"expected a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) for name, "
                f"got {self.name!r}"
            )


class AppConfig(ConfigModel, frozen=True):
    """The Go service next to the sidecar: where to read it and which endpoints to call."""

    base_url: BaseUrl = BaseUrl("http://127.0.0.1:8080")
    """Containers of a pod share loopback. No credentials in it (they would show wherever
    the URL does): they go in http_config."""
    expvar_path: UrlPath = UrlPath("/debug/vars")
    """Go's expvar handler default."""
    expvar_port: Annotated[int, Meta(ge=1, le=65535)] | None = None
    """None: base_url's port, where Go's default mux serves expvar; set when the app
    serves it on a debug listener of its own."""
    break_path: UrlPath = UrlPath("/v1/circuit/break")
    reset_path: UrlPath = UrlPath("/v1/circuit/reset")
    flush_path: UrlPath = UrlPath("/v1/cache/flush")
    state_path: UrlPath | None = None
    """The app's own view of its circuit (e.g. /v1/circuit), read every
    actions.reconcile.interval; none by default: an app need not offer one, and without
    it the sidecar trusts the app's answers to its calls."""
    memory_limit_bytes: Annotated[int, Meta(ge=0)] | None = None
    """The app container's memory limit, if known without a file."""
    memory_limit_file: Path | None = None
    """Downward API file holding the app container's memory limit."""
    http_config: HttpClientConfig = field(default_factory=HttpClientConfig)
    """Credentials and TLS for every call to the app (core.config_http); none by default:
    an app on the pod's loopback usually trusts it."""

    @property
    def expvar_url(self) -> str:
        """Where the expvar endpoint is: base_url (on ``expvar_port`` when set) + expvar_path."""
        if self.expvar_port is None:
            return self.base_url + self.expvar_path
        parts = urlsplit(self.base_url)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        return f"{parts.scheme}://{host}:{self.expvar_port}{parts.path}{self.expvar_path}"

    def __post_init__(self) -> None:
        if self.http_config.tls_config.configured and not self.base_url.startswith("https:"):
            raise ValueError(
                f"app.http_config.tls_config: set, but app.base_url is not https "
                f"({self.base_url}): the calls would go in plain text"
            )


class ScrapeConfig(ConfigModel, frozen=True):
    """How the expvar endpoint is read."""

    interval: PositiveDuration = PositiveDuration(15.0)
    """Prometheus's default scrape interval."""
    timeout: PositiveDuration = PositiveDuration(5.0)
    """Covers the whole body; below the interval."""
    max_interval: PositiveDuration = PositiveDuration(120.0)
    """The interval may stretch up to this when scrapes cost the app."""
    cost_fraction: Annotated[float, Meta(gt=0, le=1)] = 0.05
    """Stretch when a scrape takes more than this share."""
    max_body_bytes: ByteSize = ByteSize(16 * 1024 * 1024)
    """Counted while streaming; a body this large is a leak, not data, and decoding it
    must not cost the sidecar its memory limit."""
    soft_body_bytes: ByteSize = ByteSize(4 * 1024 * 1024)
    """Past this the interval stretches: rendering such a body costs the app a
    stop-the-world pause and tenths of a second of CPU per scrape."""
    max_object_keys: Positive = 1000
    """Larger objects become <name>_keys."""
    max_depth: Positive = 8
    """Deeper nesting is not expanded."""
    max_series: Positive = 10000
    """Samples kept from one scrape."""
    strings: Literal["skip", "info"] = "skip"
    """Strings carry no number; 'info' exports <name>_info{value=...}."""
    max_text_length: Positive = 256
    """Longer expvar keys and string values are not exported: each becomes part of a
    series held in memory, and no real name or label value is this long."""
    maps: list[MapConfig] = field(default_factory=list)
    """None by default: which expvar maps are keyed families only the app knows."""
    metric_relabel_configs: list[RelabelConfig] = field(default_factory=list)
    """None by default: names are the app's own until mapped onto the pack's."""
    retry: RetryConfig = field(
        default_factory=lambda: RetryConfig.validate(
            {"attempts": 3, "initial_backoff": "100ms", "max_backoff": "1s", "max_elapsed": "4s"}
        )
    )
    """Short: all retries fit well inside one interval."""

    def __post_init__(self) -> None:
        if self.timeout >= self.interval:
            raise ValueError(
                f"scrape.timeout: must be below scrape.interval "
                f"({format_duration(self.interval)}), got {format_duration(self.timeout)}"
            )
        if self.max_interval < self.interval:
            raise ValueError(
                f"scrape.max_interval: must not be below scrape.interval "
                f"({format_duration(self.interval)}), got {format_duration(self.max_interval)}"
            )
        paths = [m.path for m in self.maps]
        if len(set(paths)) != len(paths):
            raise ValueError(f"scrape.maps: each path may be configured once, got {paths}")
        if self.soft_body_bytes > self.max_body_bytes:
            raise ValueError(
                f"scrape.soft_body_bytes: must not exceed scrape.max_body_bytes "
                f"({int(self.max_body_bytes)}), got {int(self.soft_body_bytes)}"
            )


class StoreConfig(ConfigModel, frozen=True):
    """Bounds on the history the rules read."""

    max_retention: PositiveDuration = PositiveDuration(3600.0 + 300.0)
    """Cap on longest rule range + 5m lookback."""
    max_series: Positive = 20000
    """All origins together."""


class RulesConfig(ConfigModel, frozen=True):
    """The embedded rule engine."""

    files: list[str] | None = None
    """Globs of Prometheus rule files, relative to the config file's directory (as
    Prometheus's rule_files); unset means the pack shipped in the package, so that a
    sidecar run from any directory watches something. [] on purpose is fleet mode: no
    embedded rules, the sidecar is only an actuator."""
    evaluation_interval: PositiveDuration = PositiveDuration(15.0)
    """Prometheus's default."""
    external_labels: dict[str, str] = field(default_factory=dict)
    """Added to every alert sent, as Prometheus's global external_labels; none by default,
    a pod name or namespace is the usual choice. They are also the sidecar's identity: a
    delivered alert carrying one of them with another value is about another pod and is
    never acted on."""
    resend_delay: PositiveDuration = PositiveDuration(60.0)
    """Prometheus's --rules.alert.resend-delay."""
    alertmanager_url: Url | None = None
    """Send alerts to Alertmanager's v2 API instead of in process."""
    external_url: Url | None = None
    """Prefix of each alert's generator URL (Prometheus's --web.external-url); none by
    default: the sidecar has no query UI to link to."""
    outage_tolerance: Duration = Duration(3600.0)
    """Prometheus's --rules.alert.for-outage-tolerance default: 'for' state older than
    this is not restored after a restart."""
    for_grace_period: Duration = Duration(600.0)
    """Prometheus's --rules.alert.for-grace-period default: a restored alert waits at
    least this long before firing."""

    def __post_init__(self) -> None:
        for name in self.external_labels:
            label_name(name, "rules.external_labels")


class ServerConfig(ConfigModel, frozen=True):
    """The sidecar's own HTTP server."""

    listen: Listen = Listen("0.0.0.0:9120")
    token_file: Path | None = None
    allow_unauthenticated: bool = False
    """Must be said in so many words to listen beyond loopback."""
    max_body_bytes: ByteSize = ByteSize(1024 * 1024)
    """Checked against Content-Length before a byte is read: a notification of a pod's
    alerts is a few kilobytes."""
    header_timeout: PositiveDuration = PositiveDuration(30.0)
    """A connection must send a request's headers this soon after it opens or after its
    last answer, or it is closed: above Prometheus's 15s scrape interval, so that its
    keep-alive connection is reused."""
    body_timeout: PositiveDuration = PositiveDuration(10.0)
    """A request's body must arrive whole this soon: a megabyte takes ms."""
    max_connections: Positive = 256
    """Past this, the oldest connection without a request in progress is closed for the
    new one, so that idle clients never starve the probes; lowered to half the process's
    file descriptor limit."""
    shutdown_grace: Duration = Duration(10.0)
    """Below Kubernetes' default 30s."""


class LogConfig(ConfigModel, frozen=True):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Config(ConfigModel, frozen=True):
    """The whole configuration. ``token`` comes from the environment or ``token_file``."""

    app: AppConfig = field(default_factory=AppConfig)
    scrape: ScrapeConfig = field(default_factory=ScrapeConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    actions: ActionsConfig = field(default_factory=ActionsConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    log: LogConfig = field(default_factory=LogConfig)
    state_dir: StateDir = StateDir("/var/lib/leak-sidecar")
    """Journal and alert state; an emptyDir."""
    token: Secret | None = None

    def __post_init__(self) -> None:
        # Every cross-field problem, one line each: fixing one must not reveal the next.
        problems = []
        host = self.server.listen.rpartition(":")[0].strip("[]")
        if self.token is None and not self.server.allow_unauthenticated and not _loopback(host):
            problems.append(
                f"server.listen: {self.server.listen} is beyond loopback and no token is set "
                f"(env {ENV_TOKEN} or server.token_file); set server.allow_unauthenticated: true "
                "to accept unauthenticated actions"
            )
        if self.server.shutdown_grace < self.actions.drain_timeout:
            problems.append(
                f"server.shutdown_grace: must not be below actions.drain_timeout "
                f"({format_duration(self.actions.drain_timeout)}), "
                f"got {format_duration(self.server.shutdown_grace)}"
            )
        if problems:
            raise ValueError("\n".join(problems))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
