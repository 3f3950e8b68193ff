"""Rendering the charts with Helm's own engine and judging what comes out.

Helm runs in process through helm-python-sdk (Helm v4's Go library); every rendered object
is checked against the Kubernetes 1.29 OpenAPI schemas (kubernetes-validate, strict: an
unknown field is an error) and pod specs against Pod Security "restricted".
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = Path(__file__).parent.parent
CHARTS = ROOT / "charts"
KUBE_VERSION = "1.29.0"

# Custom resources: their schemas are the operators', not Kubernetes'. Checked by hand.
CRDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("cert-manager.io/v1", "Certificate"),
    ("cert-manager.io/v1", "Issuer"),
}


def sidecar_ingress(peers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ingress both charts give a pod with the sidecar: ``peers`` (Prometheus and
    Alertmanager) on the sidecar's port 9120, every other port open as it was."""
    return [
        {"from": peers, "ports": [{"port": 9120, "protocol": "TCP"}]},
        {
            "ports": [
                {"port": 1, "endPort": 9119, "protocol": "TCP"},
                {"port": 9121, "endPort": 65535, "protocol": "TCP"},
                {"protocol": "UDP"},
                {"protocol": "SCTP"},
            ]
        },
    ]


class Rendered:
    """One `helm template`: the manifests by template path, and the objects in them."""

    def __init__(self, manifests: dict[str, str]) -> None:
        self.manifests = manifests
        self.objects: list[dict[str, Any]] = []
        for path, text in sorted(manifests.items()):
            if path.endswith("NOTES.txt"):
                continue
            self.objects.extend(d for d in yaml.safe_load_all(text) if d)

    @property
    def notes(self) -> str:
        return next(t for p, t in self.manifests.items() if p.endswith("NOTES.txt"))

    def kinds(self) -> list[tuple[str, str]]:
        return sorted((o["kind"], o["metadata"]["name"]) for o in self.objects)

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [
            o
            for o in self.objects
            if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
        ]
        assert len(found) == 1, (kind, name, self.kinds())
        return found[0]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]


def render(
    chart: str, values: dict[str, Any], name: str = "demo", namespace: str = "shop"
) -> Rendered:
    """Render a chart under charts/ offline, as `helm template` does."""
    with helm.Chart.load(CHARTS / chart) as loaded:
        return Rendered(loaded.render(values, name=name, namespace=namespace))


def schema_error(chart: str, values: dict[str, Any]) -> str:
    """The message Helm gives for values the chart's schema refuses."""
    with helm.Chart.load(CHARTS / chart) as loaded:
        try:
            loaded.render(values, name="demo", namespace="shop")
        except helm.HelmValuesError as exc:
            return str(exc)
    raise AssertionError(f"{values} rendered")


def lint_problems(chart: str, values: dict[str, Any]) -> list[str]:
    """`helm lint --strict` for Kubernetes 1.29: every finding above "info"."""
    report = helm.lint(CHARTS / chart, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2]
    return problems + list(report["errors"])


def schema_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Each object that the Kubernetes 1.29 schemas refuse, with the reason."""
    problems = []
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CRDS:
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {where}: {exc.message}")
    return problems


_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_problems(pod: dict[str, Any]) -> list[str]:
    """What Pod Security "restricted" (Kubernetes 1.29) refuses in a pod spec."""
    problems = []
    psc = pod.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(f"spec.{key}")
    for vol in pod.get("volumes", []):
        kinds = set(vol) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            problems.append(f"volume {vol['name']}: {sorted(kinds)}")
    containers = pod.get("initContainers", []) + pod["containers"]
    for c in containers:
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            problems.append(f"{name}: capabilities.drop lacks ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities.add {caps['add']}")
        if not sc.get("runAsNonRoot", psc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile.type {seccomp}")
        if c.get("ports") and any(p.get("hostPort") for p in c["ports"]):
            problems.append(f"{name}: hostPort")
    return problems


def pod_specs(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pod spec of every workload among the objects."""
    return [o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("Deployment",)]


def notes_commands(notes: str) -> list[str]:
    """The shell commands NOTES.txt prints (indented, continuation lines joined)."""
    commands: list[str] = []
    joined = notes.replace("\\\n", " ")
    for line in joined.splitlines():
        words = line.split()
        if line.startswith("  ") and words and re.match(r"(kubectl|curl|[A-Z]+=)", words[0]):
            commands.append(line.strip())
    return commands


def shell_problems(commands: list[str]) -> list[str]:
    """What `bash -n` says of each command: a quote left open, a stray parenthesis."""
    problems = []
    for command in commands:
        result = subprocess.run(
            ["bash", "-n", "-c", command], capture_output=True, text=True, timeout=10, check=False
        )
        if result.returncode:
            problems.append(f"{command}: {result.stderr.strip()}")
    return problems
