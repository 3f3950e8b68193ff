"""What an injected sidecar's ``run`` gets from its pod: per-pod flags over the shared
config, and a token file mounted from a Secret, re-read when it is rotated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import running
from inject_support import FLAG_ANNOTATIONS, pod
from prometheus_client import CollectorRegistry

from sidecar.cli import main
from sidecar.core.config import AppConfig
from sidecar.core.config_load import load
from sidecar.inject.pod import inject
from sidecar.inject.settings import InjectSettings
from sidecar.supervisor import Sidecar

SHARED = "app:\n  base_url: http://127.0.0.1:8080\nrules:\n  files: []\n"


def _captured_run(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    seen: list[Any] = []

    def fake_run(cfg: Any, path: Any, env: Any) -> int:
        seen.append(cfg)
        return 0

    # The seam `run` hands the validated config to; nothing is started.
    monkeypatch.setattr("sidecar.supervisor.run", fake_run)
    return seen


def test_the_flags_injection_writes_override_the_shared_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The args of an injected container, given to run, move the scrape to the pod's
    expvar port and path and turn dry-run on; the app's base URL stays the shared one."""
    shared = tmp_path / "sidecar.yaml"
    shared.write_text(SHARED, encoding="utf-8")
    annotated = pod("app", annotations=FLAG_ANNOTATIONS)
    args = inject(annotated, InjectSettings())["spec"]["initContainers"][0]["args"]
    args[args.index("--config") + 1] = str(shared)
    seen = _captured_run(monkeypatch)
    assert main(args, env={"LEAK_SIDECAR_TOKEN": "t"}) == 0
    (cfg,) = seen
    assert cfg.app.expvar_url == "http://127.0.0.1:6060/internal/vars"
    assert cfg.app.base_url == "http://127.0.0.1:8080"
    assert cfg.breaker.dry_run is True


def test_without_flags_the_shared_config_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pod without annotations scrapes what the shared config says."""
    shared = tmp_path / "sidecar.yaml"
    shared.write_text(SHARED, encoding="utf-8")
    seen = _captured_run(monkeypatch)
    assert main(["run", "--config", str(shared)], env={"LEAK_SIDECAR_TOKEN": "t"}) == 0
    assert seen[0].app.expvar_url == "http://127.0.0.1:8080/debug/vars"
    assert seen[0].breaker.dry_run is False


def test_a_flag_is_checked_as_its_key(capsys: pytest.CaptureFixture[str]) -> None:
    """--app.expvar-port out of range is the key's problem line, exit 2."""
    code = main(["run", "--app.expvar-port", "70000", "--app.expvar-path", "vars"], env={})
    assert code == 2
    # The first problem is reported, as for a key of the file.
    assert capsys.readouterr().err.splitlines() == [
        "app.expvar_port: expected int <= 65535, got 70000"
    ]
    assert main(["run", "--app.expvar-path", "vars"], env={}) == 2
    assert capsys.readouterr().err.splitlines() == [
        "app.expvar_path: expected a path starting with '/', got 'vars'"
    ]


@pytest.mark.parametrize(
    ("app", "url"),
    [
        ({"base_url": "http://127.0.0.1:8080"}, "http://127.0.0.1:8080/debug/vars"),
        ({"expvar_port": 6060}, "http://127.0.0.1:6060/debug/vars"),
        (
            {"base_url": "https://[::1]:8443/api", "expvar_port": 6060},
            "https://[::1]:6060/api/debug/vars",
        ),
        ({"base_url": "http://orders", "expvar_port": 6060}, "http://orders:6060/debug/vars"),
    ],
)
def test_the_expvar_url_takes_the_port_on_the_app_host(app: dict[str, Any], url: str) -> None:
    """expvar_port replaces base_url's port (or adds one); the rest of the URL stays."""
    assert AppConfig.validate(app).expvar_url == url


async def test_a_rotated_token_file_is_used_without_a_restart(
    tmp_path: Path, log_stream: Any
) -> None:
    """The Secret's file is re-read: after a rotation the new token is accepted and the
    old one refused; while the file is briefly gone, the last token read still holds."""
    token = tmp_path / "token"
    token.write_text("first-token\n", encoding="utf-8")
    shared = tmp_path / "sidecar.yaml"
    shared.write_text(
        f"rules:\n  files: []\nserver:\n  listen: 127.0.0.1:0\n  token_file: {token}\n"
        f"state_dir: {tmp_path / 'state'}\n",
        encoding="utf-8",
    )
    cfg = load(shared, {})
    async with running(Sidecar(cfg, registry=CollectorRegistry())) as sidecar:
        url = f"http://127.0.0.1:{sidecar.port}/-/reload"

        async def status(bearer: str) -> int:
            headers = {"Authorization": f"Bearer {bearer}"}
            async with aiohttp.ClientSession() as http, http.post(url, headers=headers) as r:
                return r.status

        assert await status("first-token") == 200
        token.write_text("second-token\n", encoding="utf-8")
        assert await status("first-token") == 401
        assert await status("second-token") == 200
        token.unlink()
        assert await status("second-token") == 200
    events = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    reloads = [e for e in events if e["event"].startswith("outbound.reload")]
    assert [(e["event"], e["key"]) for e in reloads] == [
        ("outbound.reloaded", "server.token_file"),
        ("outbound.reload_failed", "server.token_file"),
    ]
    assert (
        reloads[1]["error"] == f"server.token_file: cannot read {token}: No such file or directory"
    )
