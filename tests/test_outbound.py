"""app.http_config: Prometheus's rules with exact error lines; credentials read on every use."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from sidecar.cli import main
from sidecar.core.config import Config
from sidecar.core.config_http import HttpClientConfig
from sidecar.core.config_load import load
from sidecar.core.errors import CredentialsError
from sidecar.core.outbound import Outbound, SecretReader
from sidecar.core.validation import builtins

TOKEN_ENV = {"LEAK_SIDECAR_TOKEN": "sidecar-token"}
SECRET = "hunter2-app-secret"


def _http(**section: object) -> dict[str, object]:
    return {"app": {"http_config": section}, "server": {"listen": "127.0.0.1:0"}}


BAD = [
    pytest.param(
        "app:\n  base_url: http://admin:hunter2@127.0.0.1:8080\n",
        "app.base_url: expected no user or password in the URL (it would show on the status "
        "page and in logs), got 'http://***@127.0.0.1:8080'; use app.http_config.basic_auth "
        "or authorization",
        id="userinfo",
    ),
    pytest.param(
        "app:\n  base_url: ftp://admin:hunter2@app\n",
        "app.base_url: expected no user or password in the URL (it would show on the status "
        "page and in logs), got 'ftp://***@app'; use app.http_config.basic_auth or authorization",
        id="userinfo-before-scheme-check",
    ),
    pytest.param(
        "app:\n  base_url: http://app:8080/api?token=hunter2\n",
        "app.base_url: expected no query string or fragment (paths are appended to the URL), "
        "got 'http://app:8080/api' followed by one",
        id="query",
    ),
    pytest.param(
        "app:\n  base_url: http://app:8080#top\n",
        "app.base_url: expected no query string or fragment (paths are appended to the URL), "
        "got 'http://app:8080' followed by one",
        id="fragment",
    ),
    pytest.param(
        "app:\n  http_config:\n    authorization:\n      credentials: hunter2\n"
        "      credentials_file: {tok}\n",
        "app.http_config.authorization: at most one of credentials & credentials_file must be "
        "configured, got both",
        id="credentials-twice",
    ),
    pytest.param(
        "app:\n  http_config:\n    authorization: {{}}\n",
        "app.http_config.authorization: one of credentials & credentials_file must be configured",
        id="no-credentials",
    ),
    pytest.param(
        "app:\n  http_config:\n    authorization:\n      type: Basic\n      credentials: x\n",
        "app.http_config.authorization.type: cannot be 'Basic', use basic_auth instead "
        "(as Prometheus)",
        id="type-basic",
    ),
    pytest.param(
        "app:\n  http_config:\n    authorization:\n      type: 'Bearer x'\n      credentials: x\n",
        "app.http_config.authorization.type: expected an auth scheme such as Bearer, "
        "got 'Bearer x'",
        id="type-not-a-token",
    ),
    pytest.param(
        "app:\n  http_config:\n    authorization:\n      credentials: '  '\n",
        "app.http_config.authorization.credentials: expected a secret, got an empty string",
        id="empty-inline",
    ),
    pytest.param(
        "app:\n  http_config:\n    authorization:\n      credentials_file: {missing}\n",
        "app.http_config.authorization.credentials_file: cannot read {missing}: "
        "No such file or directory",
        id="file-missing",
    ),
    pytest.param(
        "app:\n  http_config:\n    authorization:\n      credentials_file: {empty}\n",
        "app.http_config.authorization.credentials_file: {empty} is empty",
        id="file-empty",
    ),
    pytest.param(
        "app:\n  http_config:\n    authorization:\n      credentials_file: {tok}\n"
        "    basic_auth:\n      username: u\n      password: p\n",
        "app.http_config: at most one of basic_auth & authorization must be configured, got both",
        id="authorization-and-basic",
    ),
    pytest.param(
        "app:\n  http_config:\n    basic_auth:\n      username: u\n      password: p\n"
        "      password_file: {tok}\n",
        "app.http_config.basic_auth: at most one of password & password_file must be "
        "configured, got both",
        id="password-twice",
    ),
    pytest.param(
        "app:\n  http_config:\n    basic_auth:\n      username: u\n",
        "app.http_config.basic_auth: one of password & password_file must be configured",
        id="no-password",
    ),
    pytest.param(
        "app:\n  http_config:\n    basic_auth:\n      username: 'a:b'\n      password: p\n",
        "app.http_config.basic_auth.username: expected no ':' or line break, got 'a:b'",
        id="colon-in-username",
    ),
    pytest.param(
        "app:\n  base_url: https://app\n  http_config:\n    tls_config:\n      cert_file: {tok}\n",
        "app.http_config.tls_config: cert_file '{tok}' is set without key_file",
        id="cert-without-key",
    ),
    pytest.param(
        "app:\n  base_url: https://app\n  http_config:\n    tls_config:\n      key_file: {tok}\n",
        "app.http_config.tls_config: key_file '{tok}' is set without cert_file",
        id="key-without-cert",
    ),
    pytest.param(
        "app:\n  base_url: https://app\n  http_config:\n    tls_config:\n      ca_file: {tok}\n",
        "app.http_config.tls_config: no usable CA certificate in ca_file '{tok}': "
        "NO_CERTIFICATE_OR_CRL_FOUND",
        id="ca-not-pem",
    ),
    pytest.param(
        "app:\n  http_config:\n    tls_config:\n      insecure_skip_verify: 'yes'\n",
        "app.http_config.tls_config.insecure_skip_verify: expected bool, got 'yes'",
        id="loose-bool",
    ),
    pytest.param(
        "app:\n  http_config:\n    tls_config:\n      server_name: app.test\n",
        "app.http_config.tls_config: set, but app.base_url is not https "
        "(http://127.0.0.1:8080): the calls would go in plain text",
        id="tls-over-http",
    ),
    pytest.param(
        "app:\n  http_config:\n    basic_auth:\n      username: u\n      password: 12345\n",
        "app.http_config.basic_auth.password: expected str, got int",
        id="secret-of-the-wrong-type-not-echoed",
    ),
    pytest.param(
        "app:\n  http_config:\n    bearer_token: x\n",
        "app.http_config.bearer_token: unknown key",
        id="deprecated-prometheus-key",
    ),
]


@pytest.mark.parametrize(("text", "line"), BAD)
def test_check_config_prints_one_exact_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: str
) -> None:
    """Each broken http_config or base_url is one `key: problem` line, exit 2, no secret."""
    names = {"tok": tmp_path / "tok", "missing": tmp_path / "missing", "empty": tmp_path / "e"}
    names["tok"].write_text("tok-value\n")
    names["empty"].write_text("\n")
    path = tmp_path / "c.yaml"
    path.write_text(text.format(**names))
    assert main(["check-config", str(path)], env=TOKEN_ENV) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [line.format(**names)]
    assert "hunter2" not in err
    assert "tok-value" not in err


def test_valid_http_configs_load_with_prometheus_defaults(tmp_path: Path) -> None:
    """Type defaults to Bearer (trimmed, as Prometheus); the secrets are hidden in repr."""
    tok = tmp_path / "tok"
    tok.write_text(SECRET)
    cfg = Config.validate(_http(authorization={"type": " Bearer ", "credentials_file": str(tok)}))
    assert cfg.app.http_config.authorization is not None
    assert cfg.app.http_config.authorization.type == "Bearer"
    inline = Config.validate(_http(basic_auth={"username": "u", "password": SECRET}))
    assert SECRET not in repr(inline)
    assert SECRET not in str(builtins(inline))


def _outbound(tmp_path: Path, **section: object) -> Outbound:
    return Outbound(HttpClientConfig.validate(section))


def test_no_http_config_sends_no_authorization(tmp_path: Path) -> None:
    """The default adds nothing: no header, aiohttp's verified TLS default."""
    prepared = _outbound(tmp_path).prepare()
    assert (dict(prepared.headers), prepared.ssl, prepared.server_hostname) == ({}, True, None)


def test_authorization_header_from_a_file_or_inline(tmp_path: Path) -> None:
    """`<type> <credentials>`, the file's content stripped of its final newline."""
    tok = tmp_path / "tok"
    tok.write_text(f"{SECRET}\n")
    by_file = _outbound(tmp_path, authorization={"credentials_file": str(tok)})
    assert by_file.prepare().headers == {"Authorization": f"Bearer {SECRET}"}
    custom = _outbound(tmp_path, authorization={"type": "Token", "credentials": SECRET})
    assert custom.prepare().headers == {"Authorization": f"Token {SECRET}"}


def test_basic_auth_header(tmp_path: Path) -> None:
    """basic_auth is RFC 7617's header, from the password file."""
    pw = tmp_path / "pw"
    pw.write_text(SECRET)
    out = _outbound(tmp_path, basic_auth={"username": "sidecar", "password_file": str(pw)})
    encoded = base64.b64encode(f"sidecar:{SECRET}".encode()).decode()
    assert out.prepare().headers == {"Authorization": f"Basic {encoded}"}


def test_a_rotated_token_is_used_by_the_next_call(tmp_path: Path) -> None:
    """A file rewritten (same size, at once) is read again; the reload is logged, not the token."""
    tok = tmp_path / "tok"
    tok.write_text("token-one")
    out = _outbound(tmp_path, authorization={"credentials_file": str(tok)})
    assert out.prepare().headers["Authorization"] == "Bearer token-one"
    tok.write_text("token-two")  # same length, likely the same mtime tick
    with capture_logs() as logs:
        assert out.prepare().headers["Authorization"] == "Bearer token-two"
        assert out.prepare().headers["Authorization"] == "Bearer token-two"
    assert logs == [
        {
            "event": "outbound.reloaded",
            "log_level": "info",
            "key": "app.http_config.authorization.credentials_file",
            "path": str(tok),
        }
    ]


@pytest.mark.parametrize("broken", ["remove", "empty"])
def test_a_file_gone_or_empty_fails_that_call_only(tmp_path: Path, broken: str) -> None:
    """Mid-rotation a call fails with the key and why (no secret); the next one recovers."""
    tok = tmp_path / "tok"
    tok.write_text(SECRET)
    out = _outbound(tmp_path, authorization={"credentials_file": str(tok)})
    out.prepare()
    if broken == "remove":
        tok.unlink()
    else:
        tok.write_text("")
    with pytest.raises(CredentialsError) as info:
        out.prepare()
    key = "app.http_config.authorization.credentials_file"
    why = "cannot read {}: No such file or directory" if broken == "remove" else "{} is empty"
    assert str(info.value) == f"{key}: {why.format(tok)}"
    assert info.value.key == key
    tok.write_text("new-secret")
    assert out.prepare().headers["Authorization"] == "Bearer new-secret"


def test_prepared_requests_never_show_the_secret(tmp_path: Path) -> None:
    """repr() of what a request carries hides the header values."""
    out = _outbound(tmp_path, authorization={"credentials": SECRET})
    assert SECRET not in repr(out.prepare())


def test_redact_removes_what_was_sent(tmp_path: Path) -> None:
    """An app echoing our header (bearer, or basic's password) gets it redacted from our text."""
    bearer = _outbound(tmp_path, authorization={"credentials": SECRET})
    header = bearer.prepare().headers["Authorization"]
    assert bearer.redact(f"denied: {header} / {SECRET}") == "denied: <secret> / <secret>"
    basic = _outbound(tmp_path, basic_auth={"username": "u", "password": SECRET})
    encoded = basic.prepare().headers["Authorization"].split()[1]
    assert basic.redact(f"got {encoded}, password {SECRET}") == "got <secret>, password <secret>"


def test_shipped_config_still_validates_with_http_config(tmp_path: Path) -> None:
    """The documented default has an empty http_config: nothing is sent, nothing read."""
    shipped = load(Path(__file__).parent.parent / "config" / "sidecar.yaml", TOKEN_ENV)
    assert shipped.app.http_config == HttpClientConfig()


def test_a_reader_with_max_age_reads_again_on_a_change_or_when_old(tmp_path: Path) -> None:
    """With max_age (the server's token, asked on every request) the file is read again
    when its inode, size or mtime changed, and otherwise once it is max_age old: a
    same-size rewrite that keeps the mtime is seen only then."""
    path = tmp_path / "token"
    path.write_text("token-aaaa\n", encoding="utf-8")
    now = [100.0]
    reader = SecretReader(path, "server.token_file", max_age=1.0, clock=lambda: now[0])
    assert reader.value() == "token-aaaa"
    st = path.stat()
    path.write_text("token-bbbb\n", encoding="utf-8")  # same size; the mtime put back
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    now[0] = 100.9
    assert reader.value() == "token-aaaa"
    now[0] = 101.0
    assert reader.value() == "token-bbbb"
    path.write_text("token-cc\n", encoding="utf-8")  # another size: read at once
    assert reader.value() == "token-cc"
