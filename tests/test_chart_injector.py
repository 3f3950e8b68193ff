"""charts/leak-sidecar-injector rendered by Helm's own engine.

Each value set is rendered once (module scope) through helm-python-sdk; every object is
validated against the Kubernetes 1.29 schemas (custom resources excepted: see
chart_support.CRDS), the injector's pod against Pod Security "restricted", and the
webhook, TLS, shared objects and network policies against what the injector contract
says.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from chart_support import (
    Rendered,
    lint_problems,
    notes_commands,
    pod_specs,
    render,
    restricted_problems,
    schema_error,
    schema_problems,
    shell_problems,
    sidecar_ingress,
)
from cryptography import x509

from sidecar.core.config_load import load

ROOT = Path(__file__).parent.parent
CHART = "leak-sidecar-injector"
NS = "leak-sidecar"
FULL = "injector-leak-sidecar-injector"

VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "cert-manager": {"namespaces": ["shop", "payments"]},
    "cert-manager-issuer": {
        "namespaces": ["shop"],
        "tls": {"certManager": {"issuerRef": {"kind": "ClusterIssuer", "name": "corp-ca"}}},
    },
    "helm-ca": {"namespaces": ["shop"], "tls": {"mode": "helm"}},
    "locked-down": {
        "namespaces": ["shop", "payments"],
        "networkPolicy": {"enabled": True, "apiServerCIDRs": ["10.0.0.0/28", "10.0.1.0/28"]},
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "podMonitor": {"enabled": True},
        "grafanaDashboard": {"enabled": True},
    },
    "classic-own-secret": {
        "namespaces": ["shop"],
        "replicas": 3,
        "podDisruptionBudget": {"minAvailable": "50%"},
        "image": {"repository": "registry.example.com/leak-sidecar", "tag": "0.1.0"},
        "sidecar": {
            "native": False,
            "image": {"repository": "registry.example.com/leak-sidecar", "tag": "0.1.0"},
            "token": {"existingSecret": "sidecar-token"},
            "expvarPort": 6060,
            "config": {"scrape": {"interval": "30s"}},
        },
        "rules": {"extra": {"orders.yml": "groups: []\n"}},
        "webhook": {"excludeNamespaces": ["monitoring"]},
        "networkPolicy": {
            "enabled": True,
            "apiServerCIDRs": ["172.16.0.2/32"],
            "sidecars": {
                "podSelector": {"matchLabels": {"team": "checkout"}},
                "allowOtherPorts": False,
            },
        },
    },
}


@pytest.fixture(scope="module")
def sets() -> dict[str, Rendered]:
    """Each value set rendered once for the whole module."""
    return {k: render(CHART, v, name="injector", namespace=NS) for k, v in VALUE_SETS.items()}


@pytest.fixture(params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, sets: dict[str, Rendered]) -> tuple[str, Rendered]:
    name: str = request.param
    return name, sets[name]


def test_every_object_validates_against_kubernetes_1_29(rendered: tuple[str, Rendered]) -> None:
    """Every object of every value set is valid for Kubernetes 1.29 (CRDs excepted)."""
    assert schema_problems(rendered[1].objects) == []


def test_helm_lint_passes(rendered: tuple[str, Rendered]) -> None:
    """`helm lint --strict` for Kubernetes 1.29 finds nothing above "info"."""
    assert lint_problems(CHART, VALUE_SETS[rendered[0]]) == []


def test_injector_pod_meets_pod_security_restricted(rendered: tuple[str, Rendered]) -> None:
    """The injector's pod satisfies Pod Security "restricted" and mounts no API token."""
    [pod] = pod_specs(rendered[1].objects)
    assert restricted_problems(pod) == []
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_notes_commands_are_valid_shell(rendered: tuple[str, Rendered]) -> None:
    """Every command NOTES.txt prints parses as shell."""
    commands = notes_commands(rendered[1].notes)
    assert len(commands) >= 1
    assert shell_problems(commands) == []


def test_default_objects(sets: dict[str, Rendered]) -> None:
    """The defaults: the injector, its PDB, Service, settings, webhook and cert-manager TLS."""
    assert sets["default"].kinds() == [
        ("Certificate", f"{FULL}-ca"),
        ("Certificate", f"{FULL}-serving"),
        ("ConfigMap", f"{FULL}-settings"),
        ("Deployment", FULL),
        ("Issuer", f"{FULL}-ca"),
        ("Issuer", f"{FULL}-selfsigned"),
        ("MutatingWebhookConfiguration", FULL),
        ("PodDisruptionBudget", FULL),
        ("Service", FULL),
    ]


def test_injector_runs_the_contracts_command(sets: dict[str, Rendered]) -> None:
    """Two replicas run `leak-sidecar injector` with the contract's flags and mounts."""
    out = sets["default"]
    dep = out.one("Deployment")
    assert dep["spec"]["replicas"] == 2
    [container] = dep["spec"]["template"]["spec"]["containers"]
    assert container["args"] == [
        "injector",
        "--web.listen-address=0.0.0.0:9443",
        "--tls.cert-file=/etc/leak-sidecar-injector/tls/tls.crt",
        "--tls.key-file=/etc/leak-sidecar-injector/tls/tls.key",
        "--inject.config=/etc/leak-sidecar-injector/inject.yaml",
    ]
    assert container["ports"] == [{"name": "https", "containerPort": 9443, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "https",
        "scheme": "HTTPS",
    }
    assert container["readinessProbe"]["httpGet"] == {
        "path": "/readyz",
        "port": "https",
        "scheme": "HTTPS",
    }
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"] == {"secretName": f"{FULL}-tls"}
    assert volumes["settings"]["configMap"] == {"name": f"{FULL}-settings"}
    labels = dep["spec"]["template"]["metadata"]["labels"]
    pdb = out.one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == labels
    service = out.one("Service")
    assert service["spec"]["selector"] == labels
    assert service["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}
    ]


def test_settings_file_names_what_the_injector_adds(sets: dict[str, Rendered]) -> None:
    """The settings file holds the image, mode, resources, object names and expvar defaults."""
    data = sets["classic-own-secret"].one("ConfigMap", f"{FULL}-settings")["data"]
    assert yaml.safe_load(data["inject.yaml"]) == {
        "image": {
            "repository": "registry.example.com/leak-sidecar",
            "tag": "0.1.0",
            "pull_policy": "IfNotPresent",
        },
        "resources": {
            "requests": {"cpu": "20m", "memory": "64Mi"},
            "limits": {"cpu": "200m", "memory": "128Mi"},
        },
        "mode": "classic",
        "config_map": "leak-sidecar-config",
        "rules_config_map": "leak-sidecar-rules",
        "token_secret": "sidecar-token",
        "expvar_port": 6060,
        "expvar_path": None,
    }
    default = yaml.safe_load(sets["default"].one("ConfigMap")["data"]["inject.yaml"])
    assert (default["mode"], default["token_secret"]) == ("native", "leak-sidecar-token")
    assert (default["expvar_port"], default["expvar_path"]) == (None, None)


def test_settings_change_rolls_the_injector(sets: dict[str, Rendered]) -> None:
    """The pod template's checksum follows the settings file."""

    def checksum(name: str) -> str:
        dep = sets[name].one("Deployment")
        value: str = dep["spec"]["template"]["metadata"]["annotations"]["checksum/settings"]
        return value

    assert checksum("default") == checksum("cert-manager")
    assert checksum("default") != checksum("classic-own-secret")


def _webhook(name: str, path: str, operator: str, values: list[str], excluded: list[str]) -> Any:
    return {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": {
            "service": {"name": FULL, "namespace": NS, "path": path, "port": 443},
        },
        "rules": [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
                "scope": "Namespaced",
            }
        ],
        "namespaceSelector": {
            "matchExpressions": [
                {"key": "leak-sidecar.io/inject", "operator": operator, "values": values},
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": excluded},
            ]
        },
        "sideEffects": "None",
        "failurePolicy": "Ignore",
        "timeoutSeconds": 5,
        "reinvocationPolicy": "Never",
        "matchPolicy": "Equivalent",
    }


def test_webhooks_are_the_contracts(sets: dict[str, Rendered]) -> None:
    """Namespace mode for namespaces labelled enabled, pod mode for the unlabelled ones;
    both skip kube-system and the injector's namespace, fail open, CREATE pods only."""
    excluded = ["kube-system", NS]
    config = sets["default"].one("MutatingWebhookConfiguration")
    assert config["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": f"{NS}/{FULL}-serving"
    }
    assert config["webhooks"] == [
        _webhook(
            "namespace.inject.leak-sidecar.io",
            "/inject/namespace",
            "In",
            ["enabled"],
            excluded,
        ),
        _webhook(
            "pod.inject.leak-sidecar.io",
            "/inject/pod",
            "NotIn",
            ["enabled", "disabled"],
            excluded,
        ),
    ]
    more = sets["classic-own-secret"].one("MutatingWebhookConfiguration")["webhooks"]
    for webhook in more:
        names = webhook["namespaceSelector"]["matchExpressions"][1]["values"]
        assert names == ["kube-system", NS, "monitoring"]


def test_cert_manager_issues_the_serving_certificate(sets: dict[str, Rendered]) -> None:
    """A self-signed root signs a CA, whose Issuer signs the Service's certificate."""
    out = sets["default"]
    serving = out.one("Certificate", f"{FULL}-serving")["spec"]
    assert serving["secretName"] == f"{FULL}-tls"
    assert serving["dnsNames"] == [f"{FULL}.{NS}.svc", f"{FULL}.{NS}", FULL]
    assert serving["issuerRef"] == {"kind": "Issuer", "name": f"{FULL}-ca"}
    ca = out.one("Certificate", f"{FULL}-ca")["spec"]
    assert (ca["isCA"], ca["secretName"]) == (True, f"{FULL}-ca")
    assert ca["issuerRef"] == {"kind": "Issuer", "name": f"{FULL}-selfsigned"}
    assert out.one("Issuer", f"{FULL}-ca")["spec"] == {"ca": {"secretName": f"{FULL}-ca"}}
    own = sets["cert-manager-issuer"]
    assert own.all("Issuer") == []
    assert [c["metadata"]["name"] for c in own.all("Certificate")] == [f"{FULL}-serving"]
    issuer = own.one("Certificate")["spec"]["issuerRef"]
    assert issuer == {"kind": "ClusterIssuer", "name": "corp-ca"}


def test_helm_generated_ca_signs_the_served_certificate(sets: dict[str, Rendered]) -> None:
    """With tls.mode helm, the webhooks trust the CA that signed the Secret's certificate,
    which names the Service; no cert-manager object is made."""
    out = sets["helm-ca"]
    assert out.all("Certificate") == []
    assert out.all("Issuer") == []
    config = out.one("MutatingWebhookConfiguration")
    assert "annotations" not in config["metadata"]
    secret = out.one("Secret", f"{FULL}-tls")
    assert secret["type"] == "kubernetes.io/tls"
    bundles = {w["clientConfig"]["caBundle"] for w in config["webhooks"]}
    assert bundles == {secret["data"]["ca.crt"]}
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sans.value.get_values_for_type(x509.DNSName) == [
        f"{FULL}.{NS}.svc",
        f"{FULL}.{NS}",
        FULL,
    ]
    assert base64.b64decode(secret["data"]["tls.key"]).startswith(b"-----BEGIN RSA PRIVATE KEY")


def test_shared_objects_in_every_served_namespace(
    sets: dict[str, Rendered], tmp_path: Path
) -> None:
    """Each served namespace gets the config and rules ConfigMaps and a token Secret under
    the contract's names; the config loads with the sidecar's loader."""
    out = sets["cert-manager"]
    placed = sorted(
        (o["metadata"].get("namespace", NS), o["kind"], o["metadata"]["name"])
        for o in out.objects
        if o["metadata"].get("namespace")
    )
    assert placed == [
        (ns, kind, name)
        for ns in ("payments", "shop")
        for kind, name in (
            ("ConfigMap", "leak-sidecar-config"),
            ("ConfigMap", "leak-sidecar-rules"),
            ("Secret", "leak-sidecar-token"),
        )
    ]
    shop = [o for o in out.objects if o["metadata"].get("namespace") == "shop"]
    by_name = {o["metadata"]["name"]: o for o in shop}
    rules = by_name["leak-sidecar-rules"]["data"]
    assert rules == {f.name: f.read_text() for f in sorted((ROOT / "rules").glob("*.yml"))}
    token = base64.b64decode(by_name["leak-sidecar-token"]["data"]["token"])
    assert len(token) == 40
    raw = yaml.safe_load(by_name["leak-sidecar-config"]["data"]["sidecar.yaml"])
    assert raw["server"]["token_file"] == "/etc/leak-sidecar/token/token"
    (tmp_path / "token").write_text("t0k")
    raw["server"]["token_file"] = str(tmp_path / "token")
    (tmp_path / "sidecar.yaml").write_text(yaml.safe_dump(raw))
    cfg = load(tmp_path / "sidecar.yaml", {"POD_NAME": "orders-1", "POD_NAMESPACE": "shop"})
    assert cfg.app.base_url == "http://127.0.0.1:8080"
    assert str(cfg.app.memory_limit_file) == "/etc/podinfo/app-memory-limit"
    assert cfg.rules.files == ["/etc/leak-sidecar/rules/*.yml"]
    assert cfg.server.listen == "0.0.0.0:9120"
    assert str(cfg.state_dir) == "/var/lib/leak-sidecar"
    assert cfg.rules.external_labels == {"namespace": "shop", "pod": "orders-1"}


def test_existing_secret_is_not_made(sets: dict[str, Rendered]) -> None:
    """With sidecar.token.existingSecret no Secret is rendered; config and rules follow values."""
    out = sets["classic-own-secret"]
    assert out.all("Secret") == []
    config = out.one("ConfigMap", "leak-sidecar-config")["data"]["sidecar.yaml"]
    assert yaml.safe_load(config)["scrape"] == {"interval": "30s"}
    assert out.one("ConfigMap", "leak-sidecar-rules")["data"]["orders.yml"] == "groups: []\n"


def test_network_policies_admit_only_the_api_server_and_the_monitors(
    sets: dict[str, Rendered],
) -> None:
    """The injector admits the API server's CIDRs (and Prometheus when it scrapes it) on
    9443; sidecars admit Prometheus and Alertmanager on 9120 and every other port as is."""
    out = sets["locked-down"]
    policies = {
        (p["metadata"].get("namespace", NS), p["metadata"]["name"]): p
        for p in out.all("NetworkPolicy")
    }
    assert sorted(policies) == [
        (NS, FULL),
        ("payments", "leak-sidecar"),
        ("shop", "leak-sidecar"),
    ]
    values = yaml.safe_load((ROOT / "charts" / CHART / "values.yaml").read_text())["networkPolicy"]
    injector = policies[(NS, FULL)]["spec"]
    assert injector["policyTypes"] == ["Ingress"]
    assert injector["ingress"] == [
        {
            "from": [{"ipBlock": {"cidr": "10.0.0.0/28"}}, {"ipBlock": {"cidr": "10.0.1.0/28"}}],
            "ports": [{"port": 9443, "protocol": "TCP"}],
        },
        {"from": values["prometheus"], "ports": [{"port": 9443, "protocol": "TCP"}]},
    ]
    sidecars = policies[("shop", "leak-sidecar")]["spec"]
    assert sidecars["podSelector"] == {}
    assert sidecars["ingress"] == sidecar_ingress(values["prometheus"] + values["alertmanager"])
    strict = sets["classic-own-secret"]
    only = strict.one("NetworkPolicy", "leak-sidecar")["spec"]
    assert only["podSelector"] == {"matchLabels": {"team": "checkout"}}
    assert [r["ports"] for r in only["ingress"]] == [[{"port": 9120, "protocol": "TCP"}]]
    assert len(strict.one("NetworkPolicy", FULL)["spec"]["ingress"]) == 1


def test_monitors_and_dashboard(sets: dict[str, Rendered]) -> None:
    """The ServiceMonitor scrapes the injector over TLS with its CA; the PodMonitor the
    sidecars' port in the served namespaces; the dashboard carries Grafana's label."""
    out = sets["locked-down"]
    [endpoint] = out.one("ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == {
        "serverName": f"{FULL}.{NS}.svc",
        "ca": {"secret": {"name": f"{FULL}-tls", "key": "ca.crt"}},
    }
    pm = out.one("PodMonitor")["spec"]
    assert pm["namespaceSelector"] == {"matchNames": ["shop", "payments"]}
    assert pm["podMetricsEndpoints"][0]["port"] == "leak-sidecar"
    dashboard = out.one("ConfigMap", f"{FULL}-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    lib = ROOT / "charts" / "leak-sidecar" / "files" / "dashboard.json"
    assert dashboard["data"]["leak-sidecar.json"] == lib.read_text().rstrip("\n")


def test_notes_name_the_served_namespace(sets: dict[str, Rendered]) -> None:
    """NOTES.txt prints the label, patch and token commands for the first served namespace."""
    notes = sets["cert-manager"].notes
    assert f"  kubectl -n {NS} rollout status deploy/{FULL}\n" in notes
    assert f"  kubectl -n {NS} wait --for=condition=Ready certificate/{FULL}-serving\n" in notes
    assert "  kubectl label namespace shop leak-sidecar.io/inject=enabled\n" in notes
    assert (
        "  TOKEN=$(kubectl -n shop get secret leak-sidecar-token "
        "-o jsonpath='{.data.token}' | base64 -d)\n"
    ) in notes
    assert "wait --for" not in sets["helm-ca"].notes
    assert "No namespace is served yet" in sets["default"].notes


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"serviceMonitr": {"enabled": True}},
            "- at '': additional properties 'serviceMonitr' not allowed",
        ),
        (
            {"networkPolicy": {"enabled": True}},
            "- at '/networkPolicy/apiServerCIDRs': minItems: got 0, want 1",
        ),
        (
            {"tls": {"mode": "selfSigned"}},
            "- at '/tls/mode': value must be one of 'certManager', 'helm'",
        ),
        (
            {"namespaces": ["Shop"]},
            "- at '/namespaces/0': 'Shop' does not match pattern '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'",
        ),
        (
            {"sidecar": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}},
            "- at '/sidecar/resources/limits': additional properties 'nvidia.com/gpu' not allowed",
        ),
        (
            {"webhook": {"failurePolicy": "Fial"}},
            "- at '/webhook/failurePolicy': value must be one of 'Ignore', 'Fail'",
        ),
        ({"replicas": 0}, "- at '/replicas': minimum: got 0, want 1"),
    ],
)
def test_bad_values_fail_with_the_schemas_message(values: dict[str, Any], message: str) -> None:
    """A typo or a wrong value fails the render with the schema's message, naming the key."""
    assert schema_error(CHART, values) == (
        "values don't meet the specifications of the schema(s) in the following chart(s):\n"
        f"{CHART}:\n{message}\n"
    )


def test_documented_install_commands_render() -> None:
    """The `helm install` commands of the README and docs/deploy.md parse with Helm's --set
    parser and render: the namespaces they name get the shared objects."""
    docs = (ROOT / "README.md").read_text() + (ROOT / "docs" / "deploy.md").read_text()
    sets = re.findall(r"helm install \S+ charts/leak-sidecar-injector[^`]*?--set '([^']+)'", docs)
    assert sets == ["namespaces={shop}", "namespaces={shop,payments}"]
    for expression in sets:
        values = helm.parse_set_string(expression)
        out = render(CHART, values, name="leak-sidecar-injector", namespace=NS)
        served = {o["metadata"]["namespace"] for o in out.all("Secret")}
        assert served == set(values["namespaces"])
