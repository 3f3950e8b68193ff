"""What an injected pod must be, shared by the injection, webhook and chart tests.

``SIDECAR`` is the container both charts, ``leak-sidecar inject`` and the admission
webhook add: the shared contract, spelled out field by field here by hand rather than
taken from any of them, with its ``volumes`` and its ``classic`` (non-native) form;
``assert_restricted`` checks Pod Security "restricted" one field at a time;
``validate_pod`` runs the Kubernetes 1.29 schema on a pod.
"""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate

__all__ = [
    "FLAG_ANNOTATIONS",
    "SIDECAR",
    "assert_restricted",
    "classic",
    "pod",
    "validate_pod",
    "volumes",
]

KUBERNETES = "1.29"

SIDECAR: dict[str, Any] = {
    "name": "leak-sidecar",
    "image": "leak-sidecar:0.1.0",
    "imagePullPolicy": "IfNotPresent",
    "args": ["run", "--config", "/etc/leak-sidecar/sidecar.yaml"],
    "ports": [{"name": "leak-sidecar", "containerPort": 9120, "protocol": "TCP"}],
    "env": [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ],
    "livenessProbe": {
        "httpGet": {"path": "/healthz", "port": 9120},
        "periodSeconds": 10,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    },
    "readinessProbe": {
        "httpGet": {"path": "/readyz", "port": 9120},
        "periodSeconds": 5,
        "timeoutSeconds": 2,
    },
    "resources": {
        "requests": {"cpu": "20m", "memory": "64Mi"},
        "limits": {"cpu": "200m", "memory": "128Mi"},
    },
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "volumeMounts": [
        {"name": "leak-sidecar-config", "mountPath": "/etc/leak-sidecar", "readOnly": True},
        {"name": "leak-sidecar-rules", "mountPath": "/etc/leak-sidecar/rules", "readOnly": True},
        {"name": "leak-sidecar-token", "mountPath": "/etc/leak-sidecar/token", "readOnly": True},
        {"name": "leak-sidecar-podinfo", "mountPath": "/etc/podinfo", "readOnly": True},
        {"name": "leak-sidecar-state", "mountPath": "/var/lib/leak-sidecar"},
    ],
    "restartPolicy": "Always",
}


FLAG_ANNOTATIONS = {
    "leak-sidecar.io/expvar-port": "6060",
    "leak-sidecar.io/expvar-path": "/internal/vars",
    "leak-sidecar.io/dry-run": "true",
}
"""The per-pod annotations that become flags of ``run`` (an expvar debug listener, dry-run)."""


def volumes(
    app: str = "app",
    rules: str = "leak-sidecar-rules",
    config: str = "leak-sidecar-config",
    secret: str = "leak-sidecar-token",
) -> list[dict[str, Any]]:
    """The sidecar's volumes for a pod whose app container is ``app``, from the named
    ConfigMaps and Secret (the defaults are those ``inject`` and the webhook use)."""
    return [
        {
            "name": "leak-sidecar-config",
            "configMap": {
                "name": config,
                "items": [{"key": "sidecar.yaml", "path": "sidecar.yaml"}],
            },
        },
        {"name": "leak-sidecar-rules", "configMap": {"name": rules}},
        {
            "name": "leak-sidecar-token",
            "secret": {"secretName": secret, "items": [{"key": "token", "path": "token"}]},
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
        {"name": "leak-sidecar-state", "emptyDir": {"sizeLimit": "16Mi"}},
    ]


def classic(container: dict[str, Any]) -> dict[str, Any]:
    """The contract's container in classic mode (a plain container): no restartPolicy."""
    return {k: v for k, v in container.items() if k != "restartPolicy"}


def pod(*containers: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A Pod with one Go-service-like container per name (the first one has a volume)."""
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": name,
                "image": f"registry.example/{name}:1.4.2",
                "ports": [{"name": "http", "containerPort": 8080}],
                "resources": {"limits": {"memory": "512Mi"}},
            }
            for name in containers
        ],
        "volumes": [{"name": "cache", "emptyDir": {}}],
    }
    meta: dict[str, Any] = {"name": "orders-7d4b9c", "namespace": "shop"}
    if annotations is not None:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def validate_pod(obj: dict[str, Any]) -> None:
    """Raises kubernetes_validate.ValidationError if ``obj`` is not a valid 1.29 object."""
    kubernetes_validate.validate(copy.deepcopy(obj), KUBERNETES, strict=True)


def assert_restricted(spec: dict[str, Any], name: str = "leak-sidecar") -> None:
    """The container ``name`` of ``spec`` (and the volumes it brings) satisfies Pod
    Security "restricted", field by field."""
    every = spec.get("containers", []) + spec.get("initContainers", [])
    (container,) = [c for c in every if c["name"] == name]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] != 0
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in sc["capabilities"]
    assert "privileged" not in sc
    assert sc["readOnlyRootFilesystem"] is True
    assert "hostPort" not in str(container["ports"])
    ours = [v for v in spec["volumes"] if v["name"].startswith("leak-sidecar-")]
    allowed = {"configMap", "secret", "downwardAPI", "emptyDir"}
    for volume in ours:
        kinds = set(volume) - {"name"}
        assert kinds <= allowed, volume
        assert "hostPath" not in volume
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert key not in spec
