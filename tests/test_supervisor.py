"""The supervisor: start-up checks, exit codes, loops that must not return."""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from sidecar import __version__
from sidecar.cli import main
from sidecar.core.config import Config
from sidecar.core.errors import ConfigError, SidecarError
from sidecar.supervisor import Sidecar, _guard, memory_limit

BASE = {"server": {"listen": "127.0.0.1:0"}, "rules": {"files": []}}


def _cfg(tmp_path: Path, **app: object) -> Config:
    return Config.validate({**BASE, "app": app, "state_dir": str(tmp_path)})


def test_memory_limit_from_config_or_downward_api_file(tmp_path: Path) -> None:
    """The app's limit comes from app.memory_limit_bytes, else from the Downward API file."""
    assert memory_limit(_cfg(tmp_path)) is None
    assert memory_limit(_cfg(tmp_path, memory_limit_bytes=1024)) == 1024
    f = tmp_path / "limit"
    f.write_text("2147483648\n")
    assert memory_limit(_cfg(tmp_path, memory_limit_file=str(f))) == 2147483648


@pytest.mark.parametrize("content", ["", "2Gi", "-1", "0", "1e9"])
def test_a_memory_limit_file_that_is_not_bytes_is_a_config_error(
    tmp_path: Path, content: str
) -> None:
    """The file must hold a positive number of bytes (resourceFieldRef's default divisor)."""
    f = tmp_path / "limit"
    f.write_text(content)
    with pytest.raises(ConfigError) as info:
        memory_limit(_cfg(tmp_path, memory_limit_file=str(f)))
    assert info.value.problems == [
        f"app.memory_limit_file: expected a positive number of bytes in {f}, got {content!r}"
    ]


def test_a_missing_memory_limit_file_is_a_config_error(tmp_path: Path) -> None:
    """A named file that is not there is reported with its path."""
    f = tmp_path / "nope"
    with pytest.raises(ConfigError) as info:
        memory_limit(_cfg(tmp_path, memory_limit_file=str(f)))
    assert info.value.problems == [
        f"app.memory_limit_file: cannot read {f}: No such file or directory"
    ]


def test_run_refuses_invalid_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A rule file promtool rejects is exit 2 at start, naming file, group and rule.
    (A valid rule the evaluator cannot run is not: it loads and reports health err.)"""
    rules = tmp_path / "bad.yml"
    rules.write_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(x\n")
    cfg = tmp_path / "sidecar.yaml"
    cfg.write_text(
        f"rules:\n  files: [{rules}]\nserver:\n  listen: 127.0.0.1:0\n"
        f"state_dir: {tmp_path}\nlog:\n  format: json\n"
    )
    assert main(["run", "--config", str(cfg)], env={}) == 2
    assert capsys.readouterr().err == (
        f'{rules}: 5:15: group "g", rule 1, "A": could not parse expression: '
        "1:6: parse error: unclosed left parenthesis\n"
    )


async def test_a_loop_that_returns_while_running_is_a_crash() -> None:
    """A loop meant to run until stopped that returns early raises, so the process exits 1."""

    class Quits:
        async def run(self, stop: asyncio.Event) -> None:
            return None

    stop = asyncio.Event()
    with pytest.raises(
        SidecarError, match="the scrape loop returned while the sidecar was running"
    ):
        await _guard("scrape", Quits(), stop)
    stop.set()
    await _guard("scrape", Quits(), stop)  # returning after stop is the normal end


def test_own_exposition_has_build_info_process_metrics_and_no_created_series(
    tmp_path: Path,
) -> None:
    """/metrics carries leak_sidecar_build_info and process_*, and no _created twins."""
    registry = CollectorRegistry()
    cfg = Config.validate(
        {
            "rules": {"files": []},
            "state_dir": str(tmp_path / "state"),
            "server": {"listen": "127.0.0.1:0"},
        }
    )
    Sidecar(cfg, registry=registry)
    text = generate_latest(registry).decode()
    assert (
        f'leak_sidecar_build_info{{python="{platform.python_version()}",range_kernels="c",'
        f'version="{__version__}"}} 1.0'
    ) in text.splitlines()
    names = {m.name for m in registry.collect()}
    assert {"process_cpu_seconds", "process_resident_memory_bytes"} <= names
    assert "_created" not in text


def test_run_flags_override_the_config_and_are_checked_like_its_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--web.listen-address beyond loopback without a token is refused as server.listen is."""
    code = main(["run", "--web.listen-address", "0.0.0.0:9120", "--log.level", "debug"], env={})
    assert code == 2
    assert capsys.readouterr().err.startswith(
        "server.listen: 0.0.0.0:9120 is beyond loopback and no token is set"
    )


def test_a_busy_listen_address_is_a_config_problem_not_a_crash(tmp_path: Path) -> None:
    """A port already taken ends `run` with exit 2 and one key: problem line, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "sidecar", "run", "--web.listen-address", f"127.0.0.1:{port}"],
            env={**os.environ, "LEAK_SIDECAR_CONFIG": "", "LEAK_SIDECAR_TOKEN": "t"},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"server.listen: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    assert "Traceback" not in result.stderr


def test_demo_into_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    """`leak-sidecar demo | head -1` prints the demo's first line, then the demo ends with
    141 (a closed pipe) and writes no traceback."""
    script = (
        f'{sys.executable} -m sidecar demo 2>err.txt | head -1; echo "demo exit ${{PIPESTATUS[0]}}"'
    )
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    first, status = result.stdout.splitlines()
    assert first.endswith(
        "time runs 60x faster here: 1 second of yours is 1m for the app and the sidecar"
    )
    assert status == "demo exit 141"
    err = (tmp_path / "err.txt").read_text()
    assert "Traceback" not in err
    assert "BrokenPipeError" not in err
