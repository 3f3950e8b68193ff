"""The sidecar's exceptions.

Every error the sidecar raises on purpose derives from ``SidecarError``::

    SidecarError
    ├── ConfigError          a config file, key or environment value is wrong (exit 2)
    ├── CredentialsError     a credentials or TLS file for calls to the app is unusable now
    ├── ScrapeError          one scrape of the expvar endpoint failed
    │   └── ScrapeTransient  a failure a retry may cure (refused, timeout, 5xx)
    ├── RuleError            a rule file, expression or template cannot be loaded or evaluated
    ├── JournalError         the action journal cannot be written: nothing that depended
    │                        on it was acknowledged
    ├── EvidenceError        a profile could not be fetched or read (``reason`` says why),
    │                        or evidence is off
    ├── InjectError          a pod cannot be injected (its app container cannot be told,
    │   │                    an annotation is invalid); nothing was changed
    │   └── ManifestError    the input is not Kubernetes YAML (invalid YAML, not UTF-8)
    └── ActionError          a call to the app's endpoint failed
        ├── ActionRejected   the app answered 4xx (other than 429): retrying cannot help
        └── ActionUnavailable 5xx, 429, refused, reset or timed out: transient

Exceptions carry the offending key and value as attributes; messages say what was
expected and what came. Text received from elsewhere is cut with ``clip`` so that a
hostile peer cannot flood the log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "MAX_PROBLEMS",
    "ActionError",
    "ActionRejected",
    "ActionUnavailable",
    "ConfigError",
    "CredentialsError",
    "EvidenceError",
    "InjectError",
    "JournalError",
    "ManifestError",
    "RuleError",
    "ScrapeError",
    "ScrapeTransient",
    "SidecarError",
    "clip",
    "problems_message",
]

_CLIP = 300


def clip(text: object, limit: int = _CLIP) -> str:
    """Return ``text`` as a string of at most ``limit`` characters, marking a cut."""
    s = str(text)
    return s if len(s) <= limit else s[:limit] + f"... ({len(s) - limit} more characters)"


MAX_PROBLEMS = 10
"""Problems listed in one validation message; the rest are counted, not listed, so that
a hostile body cannot make its own answer (or a log line) megabytes long."""


def problems_message(parts: list[str], total: int) -> str:
    """Listed problems ``; ``-joined, and how many more there were than listed."""
    more = total - len(parts)
    return "; ".join(parts) + (f" (and {more} more problems)" if more > 0 else "")


class SidecarError(Exception):
    """Base of every error the sidecar raises on purpose."""


class ConfigError(SidecarError):
    """The configuration is invalid; ``problems`` holds one ``key: problem`` line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class ScrapeError(SidecarError):
    """A scrape failed; ``reason`` is a low-cardinality label for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class ScrapeTransient(ScrapeError):
    """A scrape failure that a retry within the interval may cure."""


class RuleError(SidecarError):
    """A rule cannot be loaded or evaluated; names where when it knows."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        group: str | None = None,
        rule: str | None = None,
    ) -> None:
        self.file = file
        self.group = group
        self.rule = rule
        self.message = message
        where = ", ".join(
            f"{k} {v!r}" for k, v in (("file", file), ("group", group), ("rule", rule)) if v
        )
        super().__init__(f"{where}: {message}" if where else message)


class JournalError(SidecarError):
    """The journal could not be written; nothing that depended on it was acknowledged."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = path
        super().__init__(message)


class EvidenceError(SidecarError):
    """Evidence could not be captured or read; ``reason`` is a low-cardinality label."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class InjectError(SidecarError):
    """A pod (or a workload's pod template) cannot be injected; nothing was changed.

    ``key`` names what is wrong (an annotation, ``spec.containers``).
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


class ManifestError(InjectError):
    """The manifests given to inject cannot be read as Kubernetes YAML."""


class ActionError(SidecarError):
    """A call to the app failed."""

    def __init__(self, action: str, url: str, message: str, status: int | None = None) -> None:
        self.action = action
        self.url = url
        self.status = status
        super().__init__(message)


class ActionRejected(ActionError):
    """The app refused the call (4xx other than 429): a retry would be refused too."""


class ActionUnavailable(ActionError):
    """The app could not take the call now (5xx, 429, connection error, timeout)."""


class CredentialsError(SidecarError):
    """A file of ``app.http_config`` cannot be used now (gone, empty, half-written).

    ``key`` is the config key naming the file; the message never holds the secret.
    A call that meets it fails as transient: a rotation in progress ends by itself.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)
