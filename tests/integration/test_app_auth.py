"""Authenticating to the app over real HTTP on 127.0.0.1: bearer, basic auth, TLS and mTLS.

With the right app.http_config the scrape and a break call succeed; with a wrong one
they are refused once (counted, not retried); a token rewritten on disk is sent by the
next call; and no secret shows in logs, /metrics, the status page or error bodies.
"""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from actions_support import firing_action, until
from conftest import running
from msgspec import ValidationError
from outbound_support import AuthApp, Pki, make_pki, serving
from prometheus_client import CollectorRegistry

from sidecar.actions.actuator import Actuator
from sidecar.core.config import Config
from sidecar.core.errors import ScrapeError
from sidecar.core.outbound import Outbound
from sidecar.core.validation import Problem, builtins
from sidecar.scrape.scraper import Scraper
from sidecar.store import Store
from sidecar.supervisor import Sidecar

pytestmark = pytest.mark.integration

TOKEN = "app-token-0123456789"
PASSWORD = "app-password-9876543210"
BREAK = "/v1/circuit/break"
VARS = "/debug/vars"
LABELS = {"alertname": "PoolSaturated", "action": "circuit_break"}
ACTION = firing_action("act-auth-1", LABELS)


async def _no_sleep(_: float) -> None:
    return None


class Rig:
    """A scraper and an actuator on one session and one Outbound, as the supervisor wires them."""

    def __init__(self, cfg: Config, session: aiohttp.ClientSession) -> None:
        self.registry = CollectorRegistry()
        outbound = Outbound(cfg.app.http_config)
        self.scraper = Scraper(
            cfg, Store(retention_ms=600_000, max_series=1000), session, self.registry,
            sleep=_no_sleep, outbound=outbound,
        )  # fmt: skip
        self.actuator = Actuator(
            cfg.app, cfg.actions, session, self.registry, sleep=_no_sleep, outbound=outbound
        )

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def _config(tmp_path: Path, base_url: str, http_config: dict[str, Any]) -> Config:
    return Config.validate(
        {
            "app": {"base_url": base_url, "http_config": http_config},
            "server": {"listen": "127.0.0.1:0"},
            "rules": {"files": []},
            "state_dir": str(tmp_path / "state"),
        }
    )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """The process's one session: it carries no credentials of its own."""
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Certificates made once for the module."""
    return make_pki(tmp_path_factory.mktemp("pki"))


def _bearer_file(tmp_path: Path, token: str) -> Path:
    path = tmp_path / "app-token"
    path.write_text(token + "\n")
    return path


async def test_bearer_token_file_right_wrong_and_rotated(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """The right token scrapes and breaks; a wrong one is refused once each, counted as
    http_4xx and rejected, not retried; the token rewritten on disk goes with the next call."""
    app = AuthApp(expected=f"Bearer {TOKEN}")
    tok = _bearer_file(tmp_path, TOKEN)
    async with serving(app) as port:
        cfg = _config(
            tmp_path, f"http://127.0.0.1:{port}", {"authorization": {"credentials_file": str(tok)}}
        )
        rig = Rig(cfg, session)
        snap = await rig.scraper.scrape_once()
        assert len(snap.samples) > 0
        assert await rig.actuator.run(ACTION) == "success"

        tok.write_text("a-wrong-token")
        with pytest.raises(ScrapeError) as info:
            await rig.scraper.scrape_once()
        assert info.value.reason == "http_4xx"
        assert await rig.actuator.run(ACTION) == "rejected"
        assert app.seen[-2:] == [(VARS, "Bearer a-wrong-token"), (BREAK, "Bearer a-wrong-token")]
        assert (app.calls(VARS), app.calls(BREAK)) == (2, 2)  # refused once each, no retry
        assert rig.value("leak_sidecar_scrape_errors_total", reason="http_4xx") == 1
        assert rig.value("leak_sidecar_scrape_retries_total", reason="http_4xx") == 0
        assert (
            rig.value("leak_sidecar_actions_total", action="circuit_break", outcome="rejected") == 1
        )
        assert rig.value("leak_sidecar_action_retries_total", action="circuit_break") == 0

        app.expected = "Bearer rotated-token"
        tok.write_text("rotated-token\n")
        await rig.scraper.scrape_once()
        assert await rig.actuator.run(ACTION) == "success"
        assert app.seen[-2:] == [(VARS, "Bearer rotated-token"), (BREAK, "Bearer rotated-token")]


async def test_a_token_file_gone_mid_rotation_fails_transiently_and_sends_nothing(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """No file, no request: the scrape fails with reason credentials, the action gives up
    after its bounded retries, the app sees nothing; the file back, both work again."""
    app = AuthApp(expected=f"Bearer {TOKEN}")
    tok = _bearer_file(tmp_path, TOKEN)
    async with serving(app) as port:
        http = {"authorization": {"credentials_file": str(tok)}}
        rig = Rig(_config(tmp_path, f"http://127.0.0.1:{port}", http), session)
        tok.unlink()
        with pytest.raises(ScrapeError) as info:
            await rig.scraper.scrape_once()
        assert info.value.reason == "credentials"
        assert "app.http_config.authorization.credentials_file: cannot read" in str(info.value)
        assert await rig.actuator.run(ACTION) == "gave_up"
        assert app.seen == []
        assert rig.value("leak_sidecar_scrape_errors_total", reason="credentials") == 1
        _bearer_file(tmp_path, TOKEN)
        await rig.scraper.scrape_once()
        assert await rig.actuator.run(ACTION) == "success"
    assert app.seen == [(VARS, f"Bearer {TOKEN}"), (BREAK, f"Bearer {TOKEN}")]


async def test_no_credentials_configured_is_refused_by_an_app_that_wants_them(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """Finding 4 as it was: without http_config the app answers 401 and the call is rejected."""
    app = AuthApp(expected=f"Bearer {TOKEN}")
    async with serving(app) as port:
        rig = Rig(_config(tmp_path, f"http://127.0.0.1:{port}", {}), session)
        assert await rig.actuator.run(ACTION) == "rejected"
    assert app.seen == [(BREAK, None)]


@pytest.mark.parametrize("right", [True, False], ids=["right-password", "wrong-password"])
async def test_basic_auth(tmp_path: Path, session: aiohttp.ClientSession, right: bool) -> None:
    """basic_auth with a password file: accepted when right, refused once when wrong."""
    app = AuthApp(expected="Basic " + base64.b64encode(f"sidecar:{PASSWORD}".encode()).decode())
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD if right else "not-the-password")
    async with serving(app) as port:
        http = {"basic_auth": {"username": "sidecar", "password_file": str(pw)}}
        rig = Rig(_config(tmp_path, f"http://127.0.0.1:{port}", http), session)
        if right:
            await rig.scraper.scrape_once()
        else:
            with pytest.raises(ScrapeError):
                await rig.scraper.scrape_once()
        assert await rig.actuator.run(ACTION) == ("success" if right else "rejected")
    assert (app.calls(VARS), app.calls(BREAK)) == (1, 1)


def _tls_url(port: int) -> str:
    return f"https://127.0.0.1:{port}"


async def test_tls_with_ca_and_server_name(
    tmp_path: Path, session: aiohttp.ClientSession, pki: Pki
) -> None:
    """ca_file + server_name (the certificate names app.test, not 127.0.0.1) verify the app."""
    app = AuthApp(expected=f"Bearer {TOKEN}")
    async with serving(app, pki.server_context()) as port:
        http = {
            "authorization": {"credentials": TOKEN},
            "tls_config": {"ca_file": str(pki.ca), "server_name": "app.test"},
        }
        rig = Rig(_config(tmp_path, _tls_url(port), http), session)
        await rig.scraper.scrape_once()
        assert await rig.actuator.run(ACTION) == "success"
    assert app.seen == [(VARS, f"Bearer {TOKEN}"), (BREAK, f"Bearer {TOKEN}")]


@pytest.mark.parametrize(
    "tls",
    [
        pytest.param({"ca_file": "other", "server_name": "app.test"}, id="unknown-ca"),
        pytest.param({"ca_file": "ca"}, id="name-mismatch"),
        pytest.param({}, id="system-trust-store"),
    ],
)
async def test_tls_that_does_not_verify_is_refused_not_retried(
    tmp_path: Path, session: aiohttp.ClientSession, pki: Pki, tls: dict[str, str]
) -> None:
    """A certificate that does not verify: scrape reason tls, action rejected, one try each,
    and the request (with its token) never reached the app."""
    app = AuthApp(expected=None)
    files = {"ca": str(pki.ca), "other": str(pki.other_ca)}
    tls = {k: files.get(v, v) if k == "ca_file" else v for k, v in tls.items()}
    async with serving(app, pki.server_context()) as port:
        http = {"authorization": {"credentials": TOKEN}, "tls_config": tls}
        rig = Rig(_config(tmp_path, _tls_url(port), http), session)
        with pytest.raises(ScrapeError) as info:
            await rig.scraper.scrape_once()
        assert info.value.reason == "tls"
        assert await rig.actuator.run(ACTION) == "rejected"
    assert app.seen == []
    assert rig.value("leak_sidecar_scrape_errors_total", reason="tls") == 1
    assert rig.value("leak_sidecar_scrape_retries_total", reason="tls") == 0
    assert rig.value("leak_sidecar_action_retries_total", action="circuit_break") == 0


async def test_mutual_tls_client_certificate(
    tmp_path: Path, session: aiohttp.ClientSession, pki: Pki
) -> None:
    """An app demanding a client certificate accepts cert_file/key_file and refuses none."""
    app = AuthApp(expected=None)
    server = pki.server_context(client_cert_required=True)
    base = {"ca_file": str(pki.ca), "server_name": "app.test"}
    async with serving(app, server) as port:
        mtls = {**base, "cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}
        rig = Rig(_config(tmp_path, _tls_url(port), {"tls_config": mtls}), session)
        await rig.scraper.scrape_once()
        assert await rig.actuator.run(ACTION) == "success"
        bare = Rig(_config(tmp_path, _tls_url(port), {"tls_config": base}), session)
        with pytest.raises(ScrapeError):
            await bare.scraper.scrape_once()
    assert (app.calls(VARS), app.calls(BREAK)) == (1, 1)


async def test_a_rotated_ca_file_is_used_by_the_next_call(
    tmp_path: Path, session: aiohttp.ClientSession, pki: Pki
) -> None:
    """ca_file rewritten on disk (wrong CA, then the right one) rebuilds the TLS context."""
    app = AuthApp(expected=None)
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.other_ca.read_bytes())
    async with serving(app, pki.server_context()) as port:
        http = {"tls_config": {"ca_file": str(ca), "server_name": "app.test"}}
        rig = Rig(_config(tmp_path, _tls_url(port), http), session)
        with pytest.raises(ScrapeError):
            await rig.scraper.scrape_once()
        ca.write_bytes(pki.ca.read_bytes())
        await rig.scraper.scrape_once()
    assert app.calls(VARS) == 1


_BASIC = base64.b64encode(f"sidecar:{PASSWORD}".encode()).decode()


@pytest.mark.parametrize(
    ("kind", "secrets"),
    [("bearer-file", (TOKEN,)), ("basic-inline", (PASSWORD, _BASIC))],
)
async def test_no_secret_in_logs_metrics_status_page_or_error_bodies(
    tmp_path: Path, log_stream: io.StringIO, kind: str, secrets: tuple[str, ...]
) -> None:
    """A whole sidecar against an app that refuses it and echoes the Authorization header it
    got in its 401 body: the secret shows nowhere we write or serve, the repr included."""
    stream = log_stream
    if kind == "bearer-file":
        http: dict[str, Any] = {
            "authorization": {"credentials_file": str(_bearer_file(tmp_path, TOKEN))}
        }
    else:
        http = {"basic_auth": {"username": "sidecar", "password": PASSWORD}}
    app = AuthApp(expected="Bearer something-else", echo=True)
    async with serving(app) as port:
        cfg = _config(tmp_path, f"http://127.0.0.1:{port}", http)
        async with running(Sidecar(cfg, registry=CollectorRegistry())) as sidecar:
            base = f"http://127.0.0.1:{sidecar.port}"
            async with aiohttp.ClientSession() as client:
                answers = [repr(cfg), str(builtins(cfg))]
                async with client.post(f"{base}/v1/circuit/break", json={"reason": "test"}) as r:
                    answers.append(await r.text())
                for path in ("/metrics", "/", "/v1/circuit", "/readyz"):
                    async with client.get(base + path) as r:
                        answers.append(await r.text())
                # The refusal is logged (action.rejected, or the reconciler's retry).
                await until(lambda: "answered 401" in stream.getvalue(), within=10)
                for path in ("/metrics", "/", "/v1/circuit"):
                    async with client.get(base + path) as r:
                        answers.append(await r.text())
    sent = [got for path, got in app.seen if path == BREAK]
    assert sent
    assert all(got is not None and got.endswith(secrets[-1]) for got in sent)  # sent, echoed
    logs = stream.getvalue()
    assert "<secret>" in logs  # the echoed header was redacted, not dropped silently
    for text in (logs, *answers):
        for secret in secrets:
            assert secret not in text


def test_a_certificate_and_a_key_that_do_not_match_are_a_config_error(
    tmp_path: Path, pki: Pki
) -> None:
    """check-config builds the TLS context: a key of another certificate is one exact line."""
    http = {"tls_config": {"cert_file": str(pki.client_cert), "key_file": str(pki.server_key)}}
    with pytest.raises(ValidationError) as info:
        _config(tmp_path, "https://127.0.0.1:1", http)
    assert Problem.of(info.value) == Problem(
        ("app", "http_config", "tls_config"),
        f"cert_file '{pki.client_cert}' and key_file '{pki.server_key}': "
        "not a certificate and its private key: KEY_VALUES_MISMATCH",
    )
