"""The injection settings: what goes into every injected pod, from one YAML file.

``leak-sidecar inject --inject.config=PATH`` and ``leak-sidecar injector
--inject.config=PATH`` read the same file; without one, the defaults below are what the
Helm chart installs (image ``leak-sidecar:<version>``, the ConfigMaps
``leak-sidecar-config`` and ``leak-sidecar-rules``, the Secret ``leak-sidecar-token``).
The first problem is a ``key: problem`` line in a ``ConfigError`` (the command exits 2).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import msgspec
import yaml
from msgspec import Meta, field

from sidecar import __version__
from sidecar.core.config_fields import ConfigModel, Matching, Plain, UrlPath, expect_str
from sidecar.core.config_load import validation_problems, yaml_problem
from sidecar.core.errors import ConfigError, clip

__all__ = [
    "ImageSettings",
    "InjectSettings",
    "ObjectName",
    "Quantities",
    "Quantity",
    "ResourceSettings",
    "dns_name",
    "load_settings",
]

# RFC 1123 subdomain: what Kubernetes accepts as a ConfigMap or Secret name.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# A Kubernetes resource quantity (100m, 64Mi, 1.5, 2e3).
_QUANTITY = re.compile(
    r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$"
)
# An image reference's repository (registry host and port, path) and tag, as the
# distribution spec draws them.
_REPOSITORY = re.compile(
    r"^([a-zA-Z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def dns_name(value: str) -> str:
    """``value`` if Kubernetes takes it as an object name; ``ValueError`` otherwise."""
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise ValueError(
            f"expected a Kubernetes object name (lower-case letters, digits, '-' and '.', "
            f"at most 253 characters), got {clip(repr(value), 80)}"
        )
    return value


class ObjectName(Plain, str):
    """A Kubernetes object name (a ConfigMap's, a Secret's)."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Self:
        return cls(dns_name(expect_str(value)))


class Quantity(Matching):
    """A Kubernetes resource quantity (``20m``, ``64Mi``)."""

    __slots__ = ()
    pattern = _QUANTITY
    what = "a Kubernetes quantity such as 20m or 64Mi"


class Repository(Matching):
    """An image repository, registry host included."""

    __slots__ = ()
    pattern = _REPOSITORY
    what = "an image repository such as ghcr.io/org/name"


class Tag(Matching):
    """An image tag."""

    __slots__ = ()
    pattern = _TAG
    what = "an image tag such as 0.1.0"


class ImageSettings(ConfigModel, frozen=True):
    """The sidecar's image."""

    repository: Repository = Repository("leak-sidecar")
    """The chart's default; a registry prefix in production."""
    tag: Tag = Tag(__version__)
    """This release: the injector and the sidecar agree."""
    pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"
    """A tagged release does not change: no pull per pod."""


class Quantities(ConfigModel, frozen=True):
    cpu: Quantity
    memory: Quantity


class ResourceSettings(ConfigModel, frozen=True):
    """The sidecar container's requests and limits: a cost multiplied by the fleet."""

    requests: Quantities = field(
        default_factory=lambda: Quantities(cpu=Quantity("20m"), memory=Quantity("64Mi"))
    )
    """What a sidecar with the packaged rules uses at rest, with headroom."""
    limits: Quantities = field(
        default_factory=lambda: Quantities(cpu=Quantity("200m"), memory=Quantity("128Mi"))
    )
    """Bounded: a sidecar must never be the pod's leak."""


class InjectSettings(ConfigModel, frozen=True):
    """The settings file of ``leak-sidecar inject`` and ``leak-sidecar injector``."""

    image: ImageSettings = field(default_factory=ImageSettings)
    resources: ResourceSettings = field(default_factory=ResourceSettings)
    mode: Literal["native", "classic"] = "native"
    """A native sidecar (an init container with restartPolicy: Always, Kubernetes >=
    1.29) starts before the app and stops after it, and does not keep a Job from
    completing; 'classic' appends a plain container for older clusters."""
    config_map: ObjectName = ObjectName("leak-sidecar-config")
    """The chart's name for the sidecar.yaml ConfigMap."""
    rules_config_map: ObjectName = ObjectName("leak-sidecar-rules")
    """The chart's rule pack; a pod's leak-sidecar.io/rules-configmap names another."""
    token_secret: ObjectName = ObjectName("leak-sidecar-token")
    """The chart's Secret; its key 'token' is mounted."""
    expvar_port: Annotated[int, Meta(ge=1, le=65535)] | None = None
    """None: the port of app.base_url in the shared config; a pod's
    leak-sidecar.io/expvar-port overrides it."""
    expvar_path: UrlPath | None = None
    """None: app.expvar_path in the shared config; a pod's leak-sidecar.io/expvar-path
    overrides it."""


def load_settings(path: Path | None) -> InjectSettings:
    """The settings in ``path`` (the defaults when None); ``ConfigError`` naming the
    first problem."""
    if path is None:
        return InjectSettings()
    where = f"inject.config: {path}"
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{where}: file not found"]) from None
    except OSError as exc:
        raise ConfigError([f"{where}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{where}: expected UTF-8 text"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{where}: invalid YAML{yaml_problem(exc)}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{where}: expected a mapping at the top, got {type(raw).__name__}"])
    try:
        return InjectSettings.validate(raw)
    except msgspec.ValidationError as exc:
        raise ConfigError(validation_problems(exc, raw, "inject.config")) from None
