"""The injection settings: what goes into every injected pod, from one YAML file.

``leak-sidecar inject --inject.config=PATH`` and ``leak-sidecar injector
--inject.config=PATH`` read the same file; without one, the defaults below are what the
Helm chart installs (image ``leak-sidecar:<version>``, the ConfigMaps
``leak-sidecar-config`` and ``leak-sidecar-rules``, the Secret ``leak-sidecar-token``).
Every problem is one ``key: problem`` line in a ``ConfigError`` (the command exits 2).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, Field, ValidationError

from sidecar import __version__
from sidecar.core.config_fields import ConfigModel, UrlPath
from sidecar.core.config_load import validation_problems, yaml_problem
from sidecar.core.errors import ConfigError, clip

__all__ = [
    "ImageSettings",
    "InjectSettings",
    "Quantities",
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


def _quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(f"expected a Kubernetes quantity such as 20m or 64Mi, got {value!r}")
    return value


def _repository(value: str) -> str:
    if not _REPOSITORY.match(value):
        raise ValueError(f"expected an image repository such as ghcr.io/org/name, got {value!r}")
    return value


def _tag(value: str) -> str:
    if not _TAG.match(value):
        raise ValueError(f"expected an image tag such as 0.1.0, got {value!r}")
    return value


ObjectName = Annotated[str, AfterValidator(dns_name)]
Quantity = Annotated[str, AfterValidator(_quantity)]


class ImageSettings(ConfigModel):
    """The sidecar's image."""

    repository: Annotated[str, AfterValidator(_repository)] = Field(
        "leak-sidecar", description="The chart's default; a registry prefix in production."
    )
    tag: Annotated[str, AfterValidator(_tag)] = Field(
        __version__, description="This release: the injector and the sidecar agree."
    )
    pull_policy: Literal["IfNotPresent", "Always", "Never"] = Field(
        "IfNotPresent", description="A tagged release does not change: no pull per pod."
    )


class Quantities(ConfigModel):
    cpu: Quantity
    memory: Quantity


class ResourceSettings(ConfigModel):
    """The sidecar container's requests and limits: a cost multiplied by the fleet."""

    requests: Quantities = Field(
        default_factory=lambda: Quantities(cpu="20m", memory="64Mi"),
        description="What a sidecar with the packaged rules uses at rest, with headroom.",
    )
    limits: Quantities = Field(
        default_factory=lambda: Quantities(cpu="200m", memory="128Mi"),
        description="Bounded: a sidecar must never be the pod's leak.",
    )


class InjectSettings(ConfigModel):
    """The settings file of ``leak-sidecar inject`` and ``leak-sidecar injector``."""

    image: ImageSettings = Field(default_factory=ImageSettings)
    resources: ResourceSettings = Field(default_factory=ResourceSettings)
    mode: Literal["native", "classic"] = Field(
        "native",
        description="A native sidecar (an init container with restartPolicy: Always, "
        "Kubernetes >= 1.29) starts before the app and stops after it, and does not keep "
        "a Job from completing; 'classic' appends a plain container for older clusters.",
    )
    config_map: ObjectName = Field(
        "leak-sidecar-config", description="The chart's name for the sidecar.yaml ConfigMap."
    )
    rules_config_map: ObjectName = Field(
        "leak-sidecar-rules",
        description="The chart's rule pack; a pod's leak-sidecar.io/rules-configmap names another.",
    )
    token_secret: ObjectName = Field(
        "leak-sidecar-token", description="The chart's Secret; its key 'token' is mounted."
    )
    expvar_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="None: the port of app.base_url in the shared config; a pod's "
        "leak-sidecar.io/expvar-port overrides it.",
    )
    expvar_path: UrlPath | None = Field(
        None,
        description="None: app.expvar_path in the shared config; a pod's "
        "leak-sidecar.io/expvar-path overrides it.",
    )


def load_settings(path: Path | None) -> InjectSettings:
    """The settings in ``path`` (the defaults when None); ``ConfigError`` listing problems."""
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
        return InjectSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, "inject.config")) from None
