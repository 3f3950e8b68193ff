"""The one injection: a pod (or a workload's pod template) in, the same with the sidecar out.

``inject`` is what ``leak-sidecar inject`` applies to every opted-in manifest and what
``leak-sidecar injector`` turns into a JSONPatch, so that both produce the same pod. It
adds the sidecar container (a native sidecar, an init container with ``restartPolicy:
Always``, or a classic one), its volumes (the config and rules ConfigMaps, the token
Secret mounted as a file so that a rotation needs no restart, the app container's memory
limit through the Downward API, the state ``emptyDir``) and the annotation
``leak-sidecar.io/status: injected``, which makes it idempotent. It never changes the
app's containers or anything else already there, and refuses (``InjectError``, nothing
changed) when it cannot tell which container is the app or an annotation is invalid.

Input is a plain mapping as decoded from YAML or JSON; it is copied, never mutated.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from sidecar.core.errors import InjectError
from sidecar.inject.settings import InjectSettings, dns_name

__all__ = [
    "ANNOTATION_APP",
    "ANNOTATION_DRY_RUN",
    "ANNOTATION_EXPVAR_PATH",
    "ANNOTATION_EXPVAR_PORT",
    "ANNOTATION_INJECT",
    "ANNOTATION_RULES",
    "ANNOTATION_STATUS",
    "CONTAINER",
    "INJECTED",
    "PORT",
    "inject",
    "injected",
    "wants",
]

_PREFIX = "leak-sidecar.io/"
ANNOTATION_INJECT = _PREFIX + "inject"
ANNOTATION_STATUS = _PREFIX + "status"
ANNOTATION_APP = _PREFIX + "app-container"
ANNOTATION_EXPVAR_PORT = _PREFIX + "expvar-port"
ANNOTATION_EXPVAR_PATH = _PREFIX + "expvar-path"
ANNOTATION_RULES = _PREFIX + "rules-configmap"
ANNOTATION_DRY_RUN = _PREFIX + "dry-run"
INJECTED = "injected"

CONTAINER = "leak-sidecar"
PORT = 9120
# Where the volumes are mounted: the shared config (the chart's files/sidecar.yaml) names
# the same paths.
_CONFIG_DIR = "/etc/leak-sidecar"
_RULES_DIR = "/etc/leak-sidecar/rules"
_TOKEN_DIR = "/etc/leak-sidecar/token"  # noqa: S105 -- a mount path
_PODINFO_DIR = "/etc/podinfo"
_STATE_DIR = "/var/lib/leak-sidecar"
_UID = 65532  # "nonroot" in distroless images: no shell, no home, no privileges
_STATE_SIZE = "16Mi"  # a journal and alert state; evidence bundles are capped below it

_URL_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")


def injected(template: Mapping[str, Any]) -> bool:
    """Whether the pod (template) already carries ``leak-sidecar.io/status: injected``."""
    return _annotations(template).get(ANNOTATION_STATUS) == INJECTED


def wants(template: Mapping[str, Any], *, default: bool) -> bool:
    """Whether the pod opts in: its ``leak-sidecar.io/inject`` annotation, else ``default``.

    ``InjectError`` when the annotation is neither "true" nor "false".
    """
    metadata = template.get("metadata")
    found = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    value = found.get(ANNOTATION_INJECT) if isinstance(found, Mapping) else None
    if value is None:
        return default
    if not isinstance(value, str):
        # `inject: true` unquoted is a YAML boolean, which Kubernetes refuses as an
        # annotation: say so rather than quietly not inject.
        raise InjectError(
            ANNOTATION_INJECT,
            f'annotation {ANNOTATION_INJECT}: expected the string "true" or "false" '
            f"(quoted in YAML), got {value!r}",
        )
    return _boolean(ANNOTATION_INJECT, value)


def inject(template: Mapping[str, Any], settings: InjectSettings) -> dict[str, Any]:
    """A copy of ``template`` (a Pod, or a pod template: ``metadata`` and ``spec``) with
    the sidecar added; an injected one is returned unchanged. ``InjectError`` when it
    cannot be injected."""
    out = copy.deepcopy(dict(template))
    if injected(template):
        return out
    annotations = _annotations(template)
    spec = out.get("spec")
    if not isinstance(spec, dict):
        raise InjectError("spec", f"expected the pod's spec to be a mapping, got {_kind(spec)}")
    app = _app_container(spec, annotations)
    rules = annotations.get(ANNOTATION_RULES, settings.rules_config_map)
    try:
        dns_name(rules)
    except ValueError as exc:
        raise InjectError(ANNOTATION_RULES, f"annotation {ANNOTATION_RULES}: {exc}") from None
    container = _container(settings, _flags(annotations, settings))
    volumes = _volumes(settings, app, rules)
    _refuse_clashes(spec, volumes)
    if settings.mode == "native":
        container["restartPolicy"] = "Always"
        spec["initContainers"] = [*_list(spec, "initContainers"), container]
    else:
        spec["containers"] = [*_list(spec, "containers"), container]
    spec["volumes"] = [*_list(spec, "volumes"), *volumes]
    metadata = out.get("metadata")
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    metadata["annotations"] = {**annotations, ANNOTATION_STATUS: INJECTED}
    out["metadata"] = metadata
    return out


def _annotations(template: Mapping[str, Any]) -> dict[str, str]:
    metadata = template.get("metadata")
    found = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    if not isinstance(found, Mapping):
        return {}
    # Kubernetes admits only strings; anything else in a manifest would be refused by
    # the API server, so it cannot steer the injection either.
    return {str(k): v for k, v in found.items() if isinstance(v, str)}


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


def _boolean(key: str, value: str) -> bool:
    if value not in ("true", "false"):
        raise InjectError(key, f'annotation {key}: expected "true" or "false", got {value!r}')
    return value == "true"


def _list(spec: Mapping[str, Any], key: str) -> list[Any]:
    value = spec.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InjectError(f"spec.{key}", f"expected spec.{key} to be a list, got {_kind(value)}")
    return value


def _names(items: list[Any]) -> list[str]:
    return [str(c.get("name")) for c in items if isinstance(c, Mapping)]


def _app_container(spec: Mapping[str, Any], annotations: Mapping[str, str]) -> str:
    names = _names(_list(spec, "containers"))
    named = annotations.get(ANNOTATION_APP)
    if named is not None:
        if named not in names:
            raise InjectError(
                ANNOTATION_APP,
                f"annotation {ANNOTATION_APP}: no container named {named!r} in the pod "
                f"(containers: {', '.join(names) or 'none'})",
            )
        return named
    if len(names) == 1:
        return names[0]
    if not names:
        raise InjectError("spec.containers", "cannot tell the app container: the pod has none")
    raise InjectError(
        ANNOTATION_APP,
        f"cannot tell the app container among {len(names)} ({', '.join(names)}): "
        f"name it with the annotation {ANNOTATION_APP}",
    )


def _flags(annotations: Mapping[str, str], settings: InjectSettings) -> list[str]:
    """The ``run`` flags that override the shared config for this pod."""
    flags = []
    port: int | None = settings.expvar_port
    if (raw := annotations.get(ANNOTATION_EXPVAR_PORT)) is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= 65535:
            raise InjectError(
                ANNOTATION_EXPVAR_PORT,
                f"annotation {ANNOTATION_EXPVAR_PORT}: expected a port from 1 to 65535, "
                f"got {raw!r}",
            )
        port = int(raw)
    if port is not None:
        flags.append(f"--app.expvar-port={port}")
    # The settings file's path was validated with the file; an annotation is checked here.
    path = annotations.get(ANNOTATION_EXPVAR_PATH)
    if path is not None and (len(path) > 256 or not _URL_PATH.match(path)):
        raise InjectError(
            ANNOTATION_EXPVAR_PATH,
            f"annotation {ANNOTATION_EXPVAR_PATH}: expected a URL path starting with '/', "
            f"without query or fragment, got {path[:80]!r}",
        )
    if path is None:
        path = settings.expvar_path
    if path is not None:
        flags.append(f"--app.expvar-path={path}")
    dry = annotations.get(ANNOTATION_DRY_RUN)
    if dry is not None and _boolean(ANNOTATION_DRY_RUN, dry):
        flags.append("--breaker.dry-run")
    return flags


def _container(settings: InjectSettings, flags: list[str]) -> dict[str, Any]:
    image = settings.image
    res = settings.resources
    return {
        "name": CONTAINER,
        "image": f"{image.repository}:{image.tag}",
        "imagePullPolicy": image.pull_policy,
        "args": ["run", "--config", f"{_CONFIG_DIR}/sidecar.yaml", *flags],
        "ports": [{"name": CONTAINER, "containerPort": PORT, "protocol": "TCP"}],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
            # The address other sidecars forward this pod's alerts to (fleet.forward).
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
        # Neither probe looks at the app: a sidecar that goes unready when the app
        # struggles would amplify the failure it is there to stop.
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": PORT},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": PORT},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
        },
        "resources": {
            "requests": {"cpu": res.requests.cpu, "memory": res.requests.memory},
            "limits": {"cpu": res.limits.cpu, "memory": res.limits.memory},
        },
        # Pod Security "restricted", on the container itself: the pod's own settings are
        # the app's business and are never changed.
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": _UID,
            "runAsGroup": _UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "leak-sidecar-config", "mountPath": _CONFIG_DIR, "readOnly": True},
            {"name": "leak-sidecar-rules", "mountPath": _RULES_DIR, "readOnly": True},
            {"name": "leak-sidecar-token", "mountPath": _TOKEN_DIR, "readOnly": True},
            {"name": "leak-sidecar-podinfo", "mountPath": _PODINFO_DIR, "readOnly": True},
            {"name": "leak-sidecar-state", "mountPath": _STATE_DIR},
        ],
    }


def _volumes(settings: InjectSettings, app: str, rules: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "leak-sidecar-config",
            "configMap": {
                "name": settings.config_map,
                "items": [{"key": "sidecar.yaml", "path": "sidecar.yaml"}],
            },
        },
        {"name": "leak-sidecar-rules", "configMap": {"name": rules}},
        # A file, not an environment variable: the kubelet updates a mounted Secret in
        # place and the sidecar reads it again, so a rotated token needs no restart.
        {
            "name": "leak-sidecar-token",
            "secret": {
                "secretName": settings.token_secret,
                "items": [{"key": "token", "path": "token"}],
            },
        },
        {
            "name": "leak-sidecar-podinfo",
            "downwardAPI": {
                "items": [
                    {
                        "path": "app-memory-limit",
                        "resourceFieldRef": {
                            "containerName": app,
                            "resource": "limits.memory",
                            "divisor": "1",
                        },
                    }
                ]
            },
        },
        {"name": "leak-sidecar-state", "emptyDir": {"sizeLimit": _STATE_SIZE}},
    ]


def _refuse_clashes(spec: Mapping[str, Any], volumes: list[dict[str, Any]]) -> None:
    """A container or volume of ours already there (a hand-written sidecar, the chart's
    library templates) would make the pod invalid: say so instead."""
    containers = _names(_list(spec, "containers")) + _names(_list(spec, "initContainers"))
    if CONTAINER in containers:
        raise InjectError(
            "spec.containers",
            f"the pod already has a container named {CONTAINER!r} without the annotation "
            f"{ANNOTATION_STATUS}: {INJECTED}; remove it, or set {ANNOTATION_INJECT}: "
            '"false"',
        )
    have = set(_names(_list(spec, "volumes")))
    for clash in (v["name"] for v in volumes if v["name"] in have):
        raise InjectError(
            "spec.volumes",
            f"the pod already has a volume named {clash!r}; the sidecar needs that name",
        )
