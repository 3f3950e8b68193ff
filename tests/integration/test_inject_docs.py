"""docs/inject.md works as written: its commands run, its webhook configuration is valid,
and the settings file it points to is the defaults, every key explained.

Each ``sh`` command runs in a shell, in a directory holding the examples, with only what
a reader's cluster would supply substituted: ``kubectl get`` by the example manifest,
``kubectl apply -f -`` by the Kubernetes 1.29 schema check of what it would receive, and
for the injector its certificate (made by a CA of the test's own) and a loopback port.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import kubernetes_validate
import pytest
import trustme
import yaml
from conftest import free_port

from sidecar.inject.settings import InjectSettings, load_settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parent.parent.parent
DOC = ROOT / "docs" / "inject.md"
PYTHON = sys.executable
STAND_INS = {
    "kubectl get deploy orders -o yaml": "cat examples/inject/orders.yaml",
    "kubectl apply -f -": f"{PYTHON} -m kubernetes_validate --strict --quiet -k 1.29 -",
}


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.M | re.S)


def _commands() -> list[str]:
    out = []
    for block in _blocks("sh"):
        for command in block.replace("\\\n", " ").splitlines():
            if command.strip():
                out.append(" ".join(command.split()))
    return out


_KEY = re.compile(r"^ *([a-z_]+):")
COMMANDS = _commands()
SHELL = [c for c in COMMANDS if not c.startswith("leak-sidecar injector ")]
(INJECTOR,) = [c for c in COMMANDS if c.startswith("leak-sidecar injector ")]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory with the examples where the doc expects them."""
    shutil.copytree(ROOT / "examples" / "inject", tmp_path / "examples" / "inject")
    return tmp_path


def _env() -> dict[str, str]:
    # `leak-sidecar` is the one installed next to this interpreter.
    return {**os.environ, "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ['PATH']}"}


def test_the_doc_has_its_examples() -> None:
    """Three manifest commands and the injector's."""
    assert len(SHELL) == 3
    assert any("kubectl apply -f -" in c for c in SHELL)


@pytest.mark.parametrize("command", SHELL)
def test_every_inject_command_works_as_written(command: str, workdir: Path) -> None:
    """Each exits 0; what it writes is valid for Kubernetes 1.29, the orders Deployment
    injected with the pod's expvar port as a flag."""
    shell = command
    for real, stand_in in STAND_INS.items():
        shell = shell.replace(real, stand_in)
    if " > " not in shell and "kubernetes_validate" not in shell:
        shell += " > out.yaml"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell],
        cwd=workdir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == "injected: Deployment shop/orders"
    for path in workdir.glob("*.yaml"):
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        for doc in docs:
            kubernetes_validate.validate(doc, "1.29", strict=True)
        sidecar = docs[0]["spec"]["template"]["spec"]["initContainers"][0]
        assert sidecar["args"][3:] == ["--app.expvar-port=6060"]


async def test_the_injector_command_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    """As written, with the test's certificate and a free loopback port: it answers
    /healthz over TLS, then SIGTERM stops it with exit 0."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    key.write_bytes(issued.private_key_pem.bytes())
    port = free_port()
    argv = (
        INJECTOR.replace("0.0.0.0:9443", f"127.0.0.1:{port}")
        .replace("/etc/leak-sidecar-injector/tls/tls.crt", str(cert))
        .replace("/etc/leak-sidecar-injector/tls/tls.key", str(key))
        .replace(
            "/etc/leak-sidecar-injector/inject.yaml", str(ROOT / "examples/inject/settings.yaml")
        )
        .split()
    )
    log = (tmp_path / "injector.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        *argv, env=_env(), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        client = ssl.create_default_context()
        ca.configure_trust(client)
        answer: Any = None
        async with asyncio.timeout(20):
            while answer is None:
                try:
                    connector = aiohttp.TCPConnector(ssl=client)
                    async with (
                        aiohttp.ClientSession(connector=connector) as http,
                        http.get(f"https://127.0.0.1:{port}/healthz") as resp,
                    ):
                        answer = (resp.status, await resp.json())
                except aiohttp.ClientConnectorError:
                    assert proc.returncode is None, (tmp_path / "injector.log").read_text()
                    await asyncio.sleep(0.1)
        assert answer == (200, {"status": "ok", "detail": "serving"})
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
    lines = (tmp_path / "injector.log").read_text().splitlines()
    events = [json.loads(line)["event"] for line in lines]
    assert events == ["injector.started", "injector.stopped"]


def test_the_webhook_configuration_is_valid_and_fails_open() -> None:
    """The doc's MutatingWebhookConfiguration validates and has the contract's fields."""
    (block,) = [b for b in _blocks("yaml") if "MutatingWebhookConfiguration" in b]
    config = yaml.safe_load(block)
    kubernetes_validate.validate(config, "1.29", strict=True)
    paths = [w["clientConfig"]["service"]["path"] for w in config["webhooks"]]
    assert paths == ["/inject/namespace", "/inject/pod"]
    for webhook in config["webhooks"]:
        assert webhook["failurePolicy"] == "Ignore"
        assert webhook["sideEffects"] == "None"
        assert webhook["timeoutSeconds"] == 5
        assert webhook["reinvocationPolicy"] == "Never"
        assert webhook["admissionReviewVersions"] == ["v1"]
        assert webhook["rules"] == [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
            }
        ]
        excluded = webhook["namespaceSelector"]["matchExpressions"][1]
        assert excluded["operator"] == "NotIn"
        assert set(excluded["values"]) == {"kube-system", "leak-sidecar"}


def test_the_example_settings_are_the_defaults_each_key_explained() -> None:
    """examples/inject/settings.yaml loads to the defaults and names every key, each under
    a comment saying why (keys of one group may share one)."""
    path = ROOT / "examples" / "inject" / "settings.yaml"
    assert load_settings(path) == InjectSettings()
    lines = path.read_text(encoding="utf-8").splitlines()
    keys = [(m.group(1), n) for n, line in enumerate(lines) if (m := _KEY.match(line))]
    assert set(InjectSettings.__struct_fields__) <= {key for key, _ in keys}
    for key, at in keys:
        # Keys of one group may share the comment above the first of them.
        n = at
        while n > 0 and lines[n - 1].strip() and not lines[n - 1].strip().startswith("#"):
            n -= 1
        assert n > 0, f"{key} has no comment"
        assert lines[n - 1].strip().startswith("#"), f"{key} has no comment"
