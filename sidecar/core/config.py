"""Configuration: one YAML file plus a few environment values, validated before anything starts.

Loaded once by ``load`` and passed down as frozen pydantic models; nothing else in the
sidecar reads ``os.environ``. Every problem is reported as one ``key.path: problem`` line
and the command exits 2 (``ConfigError``). String values may name environment variables
as ``${NAME}`` (as Prometheus's ``expand-external-labels`` does), so that the pod and
namespace from the Downward API can become external labels; an unset variable is an error.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from sidecar.core.errors import ConfigError, clip

__all__ = [
    "ENV_CONFIG",
    "ENV_TOKEN",
    "ActionsConfig",
    "AppConfig",
    "BreakerConfig",
    "Config",
    "Duration",
    "LogConfig",
    "PositiveDuration",
    "RetryConfig",
    "RouteConfig",
    "RulesConfig",
    "ScrapeConfig",
    "ServerConfig",
    "StoreConfig",
    "format_duration",
    "load",
    "parse_duration",
]

ENV_CONFIG = "LEAK_SIDECAR_CONFIG"
ENV_TOKEN = "LEAK_SIDECAR_TOKEN"  # noqa: S105 -- the variable's name, not a secret

_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_UNITS = (365 * 86400.0, 7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0, 0.001)


def parse_duration(value: object) -> float:
    """Parse a Prometheus duration (``5s``, ``10m``, ``1h30m``, ``500ms``) to seconds."""
    m = _DURATION.match(value) if isinstance(value, str) else None
    # ValueError, not TypeError: pydantic reports only ValueError as a validation error.
    if m is None or not any(m.groups()):
        raise ValueError(f"expected a duration such as 15s, 10m or 1h30m, got {value!r}")
    return sum(int(g) * unit for g, unit in zip(m.groups(), _UNITS, strict=True) if g)


def format_duration(seconds: float) -> str:
    """Print seconds in Prometheus's duration syntax (``90`` -> ``1m30s``)."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    out = []
    for unit, name in ((3_600_000, "h"), (60_000, "m"), (1000, "s"), (1, "ms")):
        q, ms = divmod(ms, unit)
        if q:
            out.append(f"{q}{name}")
    return "".join(out)


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {value!r}")
    return value.rstrip("/")


def _path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"expected a path starting with '/', got {value!r}")
    return value


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise ValueError(f"expected host:port such as 0.0.0.0:9120, got {value!r}")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
"""For intervals, timeouts and backoffs: zero would spin a loop or time out at once."""
Url = Annotated[str, AfterValidator(_url)]
UrlPath = Annotated[str, AfterValidator(_path)]
Positive = Annotated[int, Field(gt=0)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetryConfig(_Model):
    """A bounded retry policy: exponential backoff with jitter, capped in attempts and time."""

    attempts: Positive = Field(3, description="Total tries, the first included.")
    initial_backoff: PositiveDuration = Field(0.1, description="Wait before the first retry.")
    max_backoff: PositiveDuration = Field(2.0, description="Cap on one wait, jitter included.")
    max_elapsed: PositiveDuration = Field(
        10.0, description="Give up once this much time has passed."
    )


_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class MapConfig(_Model):
    """An expvar map exported as one metric with its keys as label values."""

    path: str = Field(
        min_length=1, description="Dotted path of the map in /debug/vars, e.g. 'caches'."
    )
    labels: list[str] = Field(
        min_length=1,
        description="Label name for each nesting level, as client_golang's expvar collector.",
    )
    name: str | None = Field(None, description="Metric name; defaults to the sanitized path.")

    @model_validator(mode="after")
    def _check(self) -> MapConfig:
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
        return self


class AppConfig(_Model):
    """The Go service next to the sidecar: where to read it and which endpoints to call."""

    base_url: Url = Field(
        "http://127.0.0.1:8080", description="Containers of a pod share loopback."
    )
    expvar_path: UrlPath = Field("/debug/vars", description="Go's expvar handler default.")
    break_path: UrlPath = "/v1/circuit/break"
    reset_path: UrlPath = "/v1/circuit/reset"
    flush_path: UrlPath = "/v1/cache/flush"
    memory_limit_bytes: int | None = Field(
        None, ge=0, description="The app container's memory limit, if known without a file."
    )
    memory_limit_file: Path | None = Field(
        None, description="Downward API file holding the app container's memory limit."
    )


class ScrapeConfig(_Model):
    """How the expvar endpoint is read."""

    interval: PositiveDuration = Field(15.0, description="Prometheus's default scrape interval.")
    timeout: PositiveDuration = Field(5.0, description="Covers the whole body; below the interval.")
    max_interval: PositiveDuration = Field(
        120.0, description="The interval may stretch up to this when scrapes cost the app."
    )
    cost_fraction: float = Field(
        0.05, gt=0, le=1, description="Stretch when a scrape takes more than this share."
    )
    max_body_bytes: ByteSize = Field(
        ByteSize(16 * 1024 * 1024),
        gt=0,
        description="Counted while streaming; a body this large is a leak, not data, "
        "and decoding it must not cost the sidecar its memory limit.",
    )
    soft_body_bytes: ByteSize = Field(
        ByteSize(4 * 1024 * 1024),
        gt=0,
        description="Past this the interval stretches: rendering such a body costs the "
        "app a stop-the-world pause and tenths of a second of CPU per scrape.",
    )
    max_object_keys: Positive = Field(1000, description="Larger objects become <name>_keys.")
    max_depth: Positive = Field(8, description="Deeper nesting is not expanded.")
    max_series: Positive = Field(10000, description="Samples kept from one scrape.")
    strings: Literal["skip", "info"] = Field(
        "skip", description="Strings carry no number; 'info' exports <name>_info{value=...}."
    )
    max_text_length: Positive = Field(
        256,
        description="Longer expvar keys and string values are not exported: each becomes "
        "part of a series held in memory, and no real name or label value is this long.",
    )
    maps: list[MapConfig] = Field(
        default_factory=list,
        description="None by default: which expvar maps are keyed families only the app knows.",
    )
    retry: RetryConfig = Field(
        default_factory=lambda: RetryConfig.model_validate(
            {"attempts": 3, "initial_backoff": "100ms", "max_backoff": "1s", "max_elapsed": "4s"}
        ),
        description="Short: all retries fit well inside one interval.",
    )

    @model_validator(mode="after")
    def _check(self) -> ScrapeConfig:
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
        return self


class StoreConfig(_Model):
    """Bounds on the history the rules read."""

    max_retention: PositiveDuration = Field(
        3600.0 + 300.0, description="Cap on longest rule range + 5m lookback."
    )
    max_series: Positive = Field(20000, description="All origins together.")


class RulesConfig(_Model):
    """The embedded rule engine."""

    files: list[str] = Field(
        default_factory=lambda: ["rules/*.yml"],
        description="Globs of Prometheus rule files; the repository's rules/ by default.",
    )
    evaluation_interval: PositiveDuration = Field(15.0, description="Prometheus's default.")
    external_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Added to every alert sent, as Prometheus's global external_labels; "
        "none by default, a pod name or namespace is the usual choice. They are also the "
        "sidecar's identity: a delivered alert carrying one of them with another value is "
        "about another pod and is never acted on.",
    )
    resend_delay: PositiveDuration = Field(
        60.0, description="Prometheus's --rules.alert.resend-delay."
    )
    alertmanager_url: Url | None = Field(
        None, description="Send alerts to Alertmanager's v2 API instead of in process."
    )
    external_url: Url | None = Field(
        None,
        description="Prefix of each alert's generator URL (Prometheus's --web.external-url); "
        "none by default: the sidecar has no query UI to link to.",
    )
    outage_tolerance: Duration = Field(
        3600.0,
        description="Prometheus's --rules.alert.for-outage-tolerance default: 'for' state "
        "older than this is not restored after a restart.",
    )
    for_grace_period: Duration = Field(
        600.0,
        description="Prometheus's --rules.alert.for-grace-period default: a restored alert "
        "waits at least this long before firing.",
    )

    @model_validator(mode="after")
    def _check(self) -> RulesConfig:
        for name in self.external_labels:
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name) or name.startswith("__"):
                raise ValueError(
                    f"rules.external_labels: invalid label name {name!r}: expected "
                    "[a-zA-Z_][a-zA-Z0-9_]* not starting with __"
                )
        return self


class RouteConfig(_Model):
    """Alert labels -> action; the first route that matches wins."""

    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    action: Literal["circuit_break", "cache_flush", "none"]
    cooldown: Duration | None = None

    @model_validator(mode="after")
    def _check(self) -> RouteConfig:
        for name, pattern in self.match_re.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex for label {name}: {pattern!r}: {exc}") from exc
        return self


_DEFAULT_COOLDOWNS: dict[Literal["circuit_break", "cache_flush"], float] = {
    "cache_flush": 300.0,
    "circuit_break": 0.0,
}


class ActionsConfig(_Model):
    """Calls to the app."""

    timeout: PositiveDuration = Field(2.0, description="One call; a breaker must act fast.")
    retry: RetryConfig = Field(
        default_factory=lambda: RetryConfig.model_validate(
            {"attempts": 4, "initial_backoff": "200ms", "max_backoff": "5s", "max_elapsed": "20s"}
        ),
        description="Rides out an app restart without hammering it.",
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


class BreakerConfig(_Model):
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


class ServerConfig(_Model):
    """The sidecar's own HTTP server."""

    listen: Annotated[str, AfterValidator(_listen)] = "0.0.0.0:9120"
    token_file: Path | None = None
    allow_unauthenticated: bool = Field(
        False, description="Must be said in so many words to listen beyond loopback."
    )
    max_body_bytes: ByteSize = Field(ByteSize(1024 * 1024), gt=0)
    shutdown_grace: Duration = Field(10.0, description="Below Kubernetes' default 30s.")


class LogConfig(_Model):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Config(_Model):
    """The whole configuration. ``token`` comes from the environment or ``token_file``."""

    app: AppConfig = Field(default_factory=AppConfig)
    scrape: ScrapeConfig = Field(default_factory=ScrapeConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    actions: ActionsConfig = Field(default_factory=ActionsConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    state_dir: Path = Field(
        Path("/var/lib/leak-sidecar"), description="Journal and alert state; an emptyDir."
    )
    token: SecretStr | None = None

    @model_validator(mode="after")
    def _check(self) -> Config:
        host = self.server.listen.rpartition(":")[0].strip("[]")
        if self.token is None and not self.server.allow_unauthenticated and not _loopback(host):
            raise ValueError(
                f"server.listen: {self.server.listen} is beyond loopback and no token is set "
                f"(env {ENV_TOKEN} or server.token_file); set server.allow_unauthenticated: true "
                "to accept unauthenticated actions"
            )
        return self


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(node: Any, env: Mapping[str, str], path: str, problems: list[str]) -> Any:
    if isinstance(node, dict):
        return {
            k: _expand(v, env, f"{path}.{k}" if path else str(k), problems) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_expand(v, env, f"{path}.{i}", problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                problems.append(f"{path}: environment variable {name} is not set")
                return ""
            return env[name]

        return _ENV_REF.sub(sub, node)
    return node


_OWN_KEY = re.compile(r"^[a-z_]+(\.[a-z_0-9]+)+: ")


def _format_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif "got " not in msg and err["type"] != "value_error":
            msg = f"{msg}, got {clip(repr(err['input']), 80)}"
        # Cross-field checks name their own key path, both values included.
        lines.append(msg if _OWN_KEY.match(msg) else f"{key}: {msg}")
    return lines


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's error on one line: where, then what (its own text spans several)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    what = getattr(exc, "problem", None) or str(exc).replace("\n", " ")
    return f"{where}: {clip(what, 200)}"


def load(path: Path | None, env: Mapping[str, str]) -> Config:
    """Read, expand and validate the config file (or the defaults when ``path`` is None).

    Raises ``ConfigError`` listing every problem found.
    """
    raw: Any = {}
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError([f"config: file not found: {path}"]) from None
        except OSError as exc:
            raise ConfigError([f"config: cannot read {path}: {exc.strerror}"]) from exc
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError([f"config: invalid YAML in {path}{_yaml_problem(exc)}"]) from exc
        if not isinstance(raw, dict):
            raise ConfigError(
                [f"config: expected a mapping at the top of {path}, got {type(raw).__name__}"]
            )
    problems: list[str] = []
    raw = _expand(raw, env, "", problems)
    if "token" in raw:
        problems.append(f"token: unknown key (set env {ENV_TOKEN} or server.token_file)")
    token, token_problem = _token(raw, env)
    if token_problem:
        problems.append(token_problem)
    if problems:
        raise ConfigError(problems)
    if token is not None:
        raw["token"] = token
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from exc


def _token(raw: dict[str, Any], env: Mapping[str, str]) -> tuple[str | None, str | None]:
    server = raw.get("server")
    file = server.get("token_file") if isinstance(server, dict) else None
    if ENV_TOKEN in env:
        if file is not None:
            return None, f"server.token_file: set together with env {ENV_TOKEN}; choose one"
        if not env[ENV_TOKEN].strip():
            return None, f"env {ENV_TOKEN}: empty token; unset it or give a token"
        return env[ENV_TOKEN].strip(), None
    if file is None:
        return None, None
    try:
        text = Path(str(file)).read_text(encoding="utf-8").strip()
    except OSError as exc:
        return None, f"server.token_file: cannot read {file}: {exc.strerror}"
    if not text:
        return None, f"server.token_file: {file} is empty"
    return text, None
