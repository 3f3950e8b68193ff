"""The Helm chart and the Dockerfile, checked for what can be checked without helm or docker.

Neither program runs here, so nothing is rendered: these tests parse Chart.yaml,
values.yaml and the Dockerfile, validate the config the chart mounts with the sidecar's
own loader, and check that the templates only name values, templates and paths that exist.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

import sidecar
from sidecar.cli import main as cli_main
from sidecar.core.config import Config
from sidecar.core.config_load import load
from sidecar.core.errors import ConfigError
from sidecar.demo.sim import Simulation

ROOT = Path(__file__).parent.parent
CHART = ROOT / "charts" / "leak-sidecar"
TEMPLATES = CHART / "templates"
HELPERS = (TEMPLATES / "_helpers.tpl").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ENV = {"POD_NAME": "orders-7d9f-abcde", "POD_NAMESPACE": "shop", "LEAK_SIDECAR_TOKEN": "t0k"}


def values() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return data


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Sprig's mergeOverwrite on plain data: maps merge deeply, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def chart_config(tmp_path: Path, env: dict[str, str]) -> Config:
    """The config file the chart's ConfigMap holds, loaded as the sidecar loads it."""
    base = yaml.safe_load((CHART / "files" / "sidecar.yaml").read_text())
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(merge(base, values()["sidecar"]["config"])))
    return load(path, env)


def constant(name: str) -> str:
    """The body of a constant named template in _helpers.tpl."""
    m = re.search(r'\{\{- define "' + re.escape(name) + r'" -\}\}(.*?)\{\{- end -\}\}', HELPERS)
    assert m is not None, name
    return m.group(1)


def define_blocks() -> dict[str, str]:
    """Every named template in _helpers.tpl with its body."""
    blocks: dict[str, str] = {}
    for m in re.finditer(
        r'\{\{- define "([^"]+)" -\}\}(.*?)(?=\{\{- define |\{\{/\*|\Z)', HELPERS, re.S
    ):
        blocks[m.group(1)] = m.group(2)
    return blocks


def template_texts() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(TEMPLATES.iterdir())}


def test_chart_and_image_versions_follow_the_package() -> None:
    """Chart.yaml's version and appVersion and both image tags equal the package version."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = PYPROJECT["project"]
    assert (chart["apiVersion"], chart["name"], chart["type"]) == (
        "v2",
        "leak-sidecar",
        "application",
    )
    assert chart["version"] == chart["appVersion"] == sidecar.__version__ == project["version"]
    v = values()
    assert v["sidecar"]["image"]["tag"] == v["app"]["image"]["tag"] == chart["appVersion"]


def test_mounted_config_is_valid_and_points_at_the_mounts(tmp_path: Path) -> None:
    """files/sidecar.yaml with values.sidecar.config loads, and its paths are the mount paths."""
    cfg = chart_config(tmp_path, ENV)
    podinfo = (
        constant("leak-sidecar.path.podinfo") + "/" + constant("leak-sidecar.path.memoryLimit")
    )
    assert cfg.app.memory_limit_file == Path(podinfo)
    assert cfg.state_dir == Path(constant("leak-sidecar.path.state"))
    assert cfg.rules.files == [constant("leak-sidecar.path.rules") + "/*.yml"]
    assert cfg.server.listen == f"0.0.0.0:{constant('leak-sidecar.port')}"
    assert cfg.rules.external_labels == {"namespace": "shop", "pod": "orders-7d9f-abcde"}
    assert cfg.app.base_url == "http://127.0.0.1:8080"
    assert cfg.token is not None
    assert cfg.token.get_secret_value() == "t0k"
    container = define_blocks()["leak-sidecar.container"]
    assert (
        'args: ["run", "--config", "{{ include "leak-sidecar.path.config" . }}/sidecar.yaml"]'
        in container
    )


def test_mounted_config_needs_the_downward_api_and_the_token(tmp_path: Path) -> None:
    """Without the pod's env the mounted config is refused with the key and the reason."""
    with pytest.raises(ConfigError) as exc:
        chart_config(tmp_path, {"LEAK_SIDECAR_TOKEN": "t0k"})
    assert exc.value.problems == [
        "rules.external_labels.namespace: environment variable POD_NAMESPACE is not set",
        "rules.external_labels.pod: environment variable POD_NAME is not set",
    ]
    with pytest.raises(ConfigError) as exc:
        chart_config(tmp_path, {"POD_NAME": "p", "POD_NAMESPACE": "n"})
    assert exc.value.problems == [
        "server.listen: 0.0.0.0:9120 is beyond loopback and no token is set (env "
        "LEAK_SIDECAR_TOKEN or server.token_file); set server.allow_unauthenticated: true "
        "to accept unauthenticated actions"
    ]


def test_default_maps_match_the_demo_apps_expvar(tmp_path: Path) -> None:
    """Each expvar map the chart exports exists in the demo app, nested as deep as its labels."""
    doc = Simulation(clock=lambda: 0.0).expvar([])
    for m in chart_config(tmp_path, ENV).scrape.maps:
        node: Any = doc[m.path]
        for _ in m.labels:
            assert isinstance(node, dict), m.path
            node = next(iter(node.values()))
        assert isinstance(node, int), m.path


def test_templates_only_read_values_that_exist() -> None:
    """Every .Values path a template reads is declared in values.yaml."""
    v = values()
    missing = []
    for name, text in template_texts().items():
        for path in re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text):
            node: Any = v
            for part in path.strip(".").split("."):
                if not isinstance(node, dict) or part not in node:
                    missing.append(f"{name}: .Values{path}")
                    break
                node = node[part]
    assert missing == []


def test_templates_include_only_defined_templates_and_close_their_blocks() -> None:
    """Every include names a defined template; every if/range/with/define has its end."""
    defined = set(define_blocks())
    opener = re.compile(r"\{\{-?\s*(?:if|range|with|define)\b")
    closer = re.compile(r"\{\{-?\s*end\s*-?\}\}")
    for name, text in template_texts().items():
        assert set(re.findall(r'include "([^"]+)"', text)) <= defined, name
        assert len(opener.findall(text)) == len(closer.findall(text)), name


def test_pod_spec_helpers_need_only_values_and_release() -> None:
    """The container and volumes templates, and all they include, work from a parent chart."""
    blocks = define_blocks()
    todo, seen = ["leak-sidecar.container", "leak-sidecar.volumes"], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        body = blocks[name]
        assert re.findall(r"\$?\.(Chart|Files|Template|Capabilities)\b", body) == [], name
        todo.extend(re.findall(r'include "([^"]+)"', body))
    assert "leak-sidecar.fullname" in seen


def test_downward_api_names_the_app_container_and_its_memory_limit() -> None:
    """The podinfo volume holds limits.memory of the container named app.name."""
    volumes = define_blocks()["leak-sidecar.volumes"]
    assert "containerName: {{ .Values.app.name }}" in volumes
    assert "resource: limits.memory" in volumes
    assert values()["app"]["name"] == "app"
    deployment = (TEMPLATES / "deployment.yaml").read_text()
    assert "- name: {{ .Values.app.name }}" in deployment


def test_rule_files_come_from_the_projects_rules_directory() -> None:
    """The chart's rules/ is a link to the project's rules/, read by both rule templates."""
    assert (CHART / "rules").is_symlink()
    assert (CHART / "rules").resolve() == (ROOT / "rules").resolve()
    for name in ("configmap.yaml", "prometheusrule.yaml"):
        assert '.Files.Glob "rules/*.yml"' in (TEMPLATES / name).read_text()


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
    """The final stage runs leak-sidecar run --config <the copied config> as uid 65532."""
    stage = dict(final_stage())
    assert [a for w, a in instructions() if w == "FROM"] == [
        "python:${PYTHON_VERSION}-slim AS build",
        "python:${PYTHON_VERSION}-slim",
    ]
    assert ("ARG", "PYTHON_VERSION=3.11") in instructions()
    assert stage["USER"] == "65532:65532"
    assert json.loads(stage["ENTRYPOINT"]) == ["leak-sidecar"]
    cmd = json.loads(stage["CMD"])
    assert cmd == ["run", "--config", "/etc/leak-sidecar/sidecar.yaml"]
    assert ("COPY", f"config/sidecar.yaml {cmd[2]}") in final_stage()
    assert stage["EXPOSE"] == constant("leak-sidecar.port")
    assert PYPROJECT["project"]["scripts"]["leak-sidecar"] == "sidecar.cli:main"


def test_image_state_volume_is_the_default_state_dir() -> None:
    """The VOLUME is where the default config and the chart keep state."""
    default = load(ROOT / "config" / "sidecar.yaml", {"LEAK_SIDECAR_TOKEN": "x"})
    assert json.loads(dict(final_stage())["VOLUME"]) == [str(default.state_dir)]
    assert str(default.state_dir) == constant("leak-sidecar.path.state")


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
