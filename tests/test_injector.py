"""``leak-sidecar injector`` over real TLS on loopback, with a CA made for the test."""

from __future__ import annotations

import base64
import io
import json
import socket
import ssl
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from conftest import running
from inject_support import SIDECAR
from prometheus_client import CollectorRegistry

from sidecar.cli import main
from sidecar.inject.review import review
from sidecar.inject.settings import InjectSettings
from sidecar.injector.server import MAX_REVIEW_BYTES, Injector
from sidecar.injector.tls import ServingCertificate

FIXTURES = Path(__file__).parent / "fixtures" / "admission"
JSON = {"Content-Type": "application/json"}


def _write(ca: trustme.CA, cert: Path, key: Path) -> None:
    """A certificate for the loopback address from ``ca``, swapped in as the kubelet
    does a Secret's files: each written aside, then renamed over the old one."""
    issued = ca.issue_cert("127.0.0.1", "localhost")
    chain = b"".join(blob.bytes() for blob in issued.cert_chain_pems)
    for path, data in ((cert, chain), (key, issued.private_key_pem.bytes())):
        aside = path.with_suffix(".new")
        aside.write_bytes(data)
        aside.replace(path)


def _client(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def _injector(tmp_path: Path, registry: CollectorRegistry) -> AbstractAsyncContextManager[Injector]:
    injector = Injector(
        InjectSettings(),
        ServingCertificate(tmp_path / "tls.crt", tmp_path / "tls.key"),
        listen="127.0.0.1:0",
        registry=registry,
    )
    return running(injector)


async def _call(
    injector: Injector, ca: trustme.CA, method: str, path: str, **kwargs: Any
) -> tuple[int, Any]:
    """One request on a new connection (a new TLS handshake), verified against ``ca``."""
    url = f"https://127.0.0.1:{injector.port}{path}"
    connector = aiohttp.TCPConnector(ssl=_client(ca))
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.request(method, url, **kwargs) as resp,
    ):
        text = await resp.text()
        is_json = resp.content_type == "application/json"
        return resp.status, json.loads(text) if is_json else text


@pytest.fixture
def ca(tmp_path: Path) -> trustme.CA:
    """A CA whose certificate the injector serves at start."""
    authority = trustme.CA()
    _write(authority, tmp_path / "tls.crt", tmp_path / "tls.key")
    return authority


async def test_a_review_over_https_gets_the_patch(
    tmp_path: Path, ca: trustme.CA, registry: CollectorRegistry
) -> None:
    """POST /inject/pod with the Deployment's pod answers 200 with the review function's
    patch, verified against the test's CA; the decision is counted."""
    body = (FIXTURES / "deployment-pod.json").read_bytes()
    async with _injector(tmp_path, registry) as injector:
        status, answer = await _call(injector, ca, "POST", "/inject/pod", data=body, headers=JSON)
        _, metrics = await _call(injector, ca, "GET", "/metrics")
    assert status == 200
    assert answer == review(body, InjectSettings(), default=False).response
    ops = json.loads(base64.b64decode(answer["response"]["patch"]))
    assert {"op": "add", "path": "/spec/initContainers", "value": [SIDECAR]} in ops
    assert 'leak_sidecar_injector_decisions_total{decision="injected"} 1.0' in metrics
    assert 'leak_sidecar_injector_decisions_total{decision="invalid"} 0.0' in metrics


async def test_the_namespace_path_injects_pods_without_the_annotation(
    tmp_path: Path, ca: trustme.CA, registry: CollectorRegistry
) -> None:
    """The same unannotated pod: left alone on /inject/pod, injected on /inject/namespace."""
    body = (FIXTURES / "plain-pod.json").read_bytes()
    async with _injector(tmp_path, registry) as injector:
        _, by_pod = await _call(injector, ca, "POST", "/inject/pod", data=body, headers=JSON)
        _, by_ns = await _call(injector, ca, "POST", "/inject/namespace", data=body, headers=JSON)
    assert "patch" not in by_pod["response"]
    assert by_ns["response"]["patchType"] == "JSONPatch"
    assert (
        registry.get_sample_value(
            "leak_sidecar_injector_decisions_total", {"decision": "not_opted_in"}
        )
        == 1.0
    )


async def test_bad_requests_get_a_clear_answer_and_never_crash_it(
    tmp_path: Path, ca: trustme.CA, registry: CollectorRegistry, log_stream: Any
) -> None:
    """A malformed review is a 400 saying what is wrong, a wrong content type a 415, a
    body past the cap a 413; each is logged and counted, and the injector still serves."""
    malformed = (FIXTURES / "malformed.json").read_bytes()
    async with _injector(tmp_path, registry) as injector:
        bad = await _call(injector, ca, "POST", "/inject/pod", data=malformed, headers=JSON)
        text = await _call(
            injector, ca, "POST", "/inject/pod", data=b"{}", headers={"Content-Type": "text/plain"}
        )
        huge = await _call(
            injector,
            ca,
            "POST",
            "/inject/pod",
            data=io.BytesIO(b" " * (MAX_REVIEW_BYTES + 1)),
            headers=JSON,
        )
        health = await _call(injector, ca, "GET", "/healthz")
    assert bad[0] == 400
    assert bad[1] == {
        "status": "error",
        "error": "expected an admission.k8s.io/v1 AdmissionReview with a request: apiVersion: "
        "invalid enum value 'admission.k8s.io/v1beta1'",
    }
    assert text == (
        415,
        {
            "status": "error",
            "error": "unsupported content type 'text/plain', expected 'application/json'",
        },
    )
    assert huge[0] == 413
    assert health == (200, {"status": "ok", "detail": "serving"})
    assert (
        registry.get_sample_value("leak_sidecar_injector_decisions_total", {"decision": "invalid"})
        == 2.0
    )
    events = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    decisions = [e for e in events if e["event"] == "injector.decision"]
    assert [(e["decision"], e["webhook"]) for e in decisions] == [
        ("invalid", "pod"),
        ("invalid", "pod"),
    ]
    assert decisions[1]["reason"] == "content type 'text/plain'"


async def test_each_decision_is_logged_with_the_pod(
    tmp_path: Path, ca: trustme.CA, registry: CollectorRegistry, log_stream: Any
) -> None:
    """injector.decision names the review, the namespace and the pod (or its prefix)."""
    body = (FIXTURES / "two-containers-unnamed.json").read_bytes()
    async with _injector(tmp_path, registry) as injector:
        status, _ = await _call(injector, ca, "POST", "/inject/pod", data=body, headers=JSON)
    assert status == 200
    events = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    (decision,) = [e for e in events if e["event"] == "injector.decision"]
    assert {k: decision[k] for k in ("level", "decision", "namespace", "pod", "uid")} == {
        "level": "warning",
        "decision": "refused",
        "namespace": "shop",
        "pod": "checkout-5c8d7b-*",
        "uid": "f6a7b8c9-0d1e-4f2a-b3c4-d5e6f7a8b906",
    }


async def test_a_certificate_rotated_on_disk_is_served_without_a_restart(
    tmp_path: Path, ca: trustme.CA, registry: CollectorRegistry, log_stream: Any
) -> None:
    """After the files are replaced by a certificate from another CA, the next
    connection is served with it; a half-written pair keeps the last good one."""
    renewed = trustme.CA()
    async with _injector(tmp_path, registry) as injector:
        assert (await _call(injector, ca, "GET", "/healthz"))[0] == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await _call(injector, renewed, "GET", "/healthz")
        _write(renewed, tmp_path / "tls.crt", tmp_path / "tls.key")
        assert (await _call(injector, renewed, "GET", "/healthz"))[0] == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await _call(injector, ca, "GET", "/healthz")
        (tmp_path / "tls.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
        assert (await _call(injector, renewed, "GET", "/healthz"))[0] == 200
    assert injector.certificate.reloads == 1
    events = [json.loads(line)["event"] for line in log_stream.getvalue().splitlines()]
    assert [e for e in events if e.startswith("injector.certificate")] == [
        "injector.certificate_reloaded",
        "injector.certificate_reload_failed",
    ]


def test_an_unusable_certificate_stops_it_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing file or a key that is not one: exit 2, one line, before listening."""
    argv = ["injector", "--web.listen-address=127.0.0.1:0"]
    missing = tmp_path / "nope.crt"
    code = main([*argv, f"--tls.cert-file={missing}", f"--tls.key-file={missing}"], env={})
    assert (code, capsys.readouterr().err) == (
        2,
        f"--tls.cert-file, --tls.key-file: cannot read {missing}: No such file or directory\n",
    )
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n", encoding="utf-8")
    code = main([*argv, f"--tls.cert-file={junk}", f"--tls.key-file={junk}"], env={})
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(
        "--tls.cert-file, --tls.key-file: not a certificate and its private key: "
    )


def test_a_bad_listen_address_or_settings_file_stops_it_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each is one line naming the flag, exit 2."""
    certs = ["--tls.cert-file=x", "--tls.key-file=x"]
    assert main(["injector", "--web.listen-address=9443", *certs], env={}) == 2
    assert capsys.readouterr().err == (
        "--web.listen-address: expected host:port such as 0.0.0.0:9120, got '9443'\n"
    )
    settings = tmp_path / "inject.yaml"
    settings.write_text("mode: sidecar\n", encoding="utf-8")
    assert main(["injector", f"--inject.config={settings}", *certs], env={}) == 2
    assert capsys.readouterr().err == "mode: invalid enum value 'sidecar'\n"


INJECTOR_ROUTES = [
    ("GET", "/-/healthy"),
    ("GET", "/-/ready"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/readyz"),
    ("POST", "/inject/namespace"),
    ("POST", "/inject/pod"),
]


def test_the_injector_s_routes_and_metric_are_pinned(tmp_path: Path, ca: trustme.CA) -> None:
    """What the MutatingWebhookConfiguration, the probes and dashboards rely on."""
    registry = CollectorRegistry()
    injector = Injector(
        InjectSettings(),
        ServingCertificate(tmp_path / "tls.crt", tmp_path / "tls.key"),
        listen="127.0.0.1:0",
        registry=registry,
    )
    routes = sorted(
        {
            (r.method, r.resource.canonical)
            for r in injector.server.app.router.routes()
            if r.resource is not None and r.method != "HEAD"
        }
    )
    assert routes == INJECTOR_ROUTES
    assert sorted(m.name for m in registry.collect()) == ["leak_sidecar_injector_decisions"]


def test_a_busy_port_stops_it_with_the_flag_s_name(
    tmp_path: Path, ca: trustme.CA, capsys: pytest.CaptureFixture[str]
) -> None:
    """A port already taken is one line naming --web.listen-address, exit 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(
            [
                "injector",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--tls.cert-file={tmp_path / 'tls.crt'}",
                f"--tls.key-file={tmp_path / 'tls.key'}",
            ],
            env={},
        )
    assert (code, capsys.readouterr().err) == (
        2,
        f"--web.listen-address: cannot listen on 127.0.0.1:{port}: Address already in use\n",
    )
