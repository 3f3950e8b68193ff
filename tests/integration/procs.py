"""Real processes for the integration tests: ``prometheus``, ``prometheus-alertmanager``,
and ``leak-sidecar run`` itself.

Each one runs on 127.0.0.1 at a free port, with its config, data and log in a directory
of the test's own, is waited for until ``/-/ready`` answers (bounded), and is stopped
(SIGTERM, then SIGKILL) when its context exits, whatever happened inside. Alertmanager's
clustering is off unless asked for (then on loopback); every URL they are given is a
loopback one, so nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from conftest import free_port

__all__ = [
    "Command",
    "Running",
    "alertmanager",
    "alertmanager_config",
    "binary",
    "prometheus",
    "sidecar_command",
]

_START_ATTEMPTS = 3  # a free port can be taken before the process binds it: start again
_READY_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class Running:
    """A started, ready process: where it answers and where it logs."""

    url: str
    port: int
    workdir: Path
    log: Path


def binary(*names: str) -> str:
    """The first of ``names`` on PATH; fails the test, naming the package, when none is."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError(f"none of {', '.join(names)} is installed (Debian: {names[0]})")


def alertmanager_config(
    url: str,
    credentials: Path | None = None,
    *,
    group_wait: str = "50ms",
    group_interval: str = "200ms",
    repeat_interval: str = "1h",
) -> str:
    """One route, grouped by alertname, to one webhook receiver at ``url``.

    ``credentials`` names a file holding the bearer token the webhook sends, as
    Alertmanager's ``http_config.authorization.credentials_file`` reads it.
    """
    auth = (
        f"""
        http_config:
          authorization:
            type: Bearer
            credentials_file: {credentials}"""
        if credentials
        else ""
    )
    return f"""
route:
  receiver: sidecar
  group_by: [alertname]
  group_wait: {group_wait}
  group_interval: {group_interval}
  repeat_interval: {repeat_interval}
receivers:
  - name: sidecar
    webhook_configs:
      - url: {url}
        send_resolved: true{auth}
"""


def alertmanager(
    workdir: Path,
    config: str,
    *,
    port: int | None = None,
    cluster: str = "",
    peers: Sequence[str] = (),
) -> AbstractAsyncContextManager[Running]:
    """A real, ready Alertmanager with ``config``; data under ``workdir``.

    ``port`` fixes the port (when a URL must be known before the process starts);
    otherwise a free one is taken, and taken again if another process was quicker.
    Clustering is off unless ``cluster`` names a loopback ``host:port`` to gossip on,
    with ``peers`` the other members' (an HA pair, as deployed in production).
    """
    gossip = [f"--cluster.peer={p}" for p in peers]
    if cluster:
        # Short timeouts: the members agree within a second on loopback.
        gossip += ["--cluster.peer-timeout=1s", "--cluster.gossip-interval=50ms"]
    return _process(
        "alertmanager",
        binary("prometheus-alertmanager", "alertmanager"),
        workdir,
        config,
        port,
        f"--storage.path={workdir / 'data'}",
        f"--cluster.listen-address={cluster}",
        *gossip,
        "--web.external-url=http://alertmanager.example:9093",
    )


def prometheus(
    workdir: Path, config: str, *, port: int | None = None
) -> AbstractAsyncContextManager[Running]:
    """A real, ready Prometheus with ``config``; its TSDB under ``workdir``.

    The config should name only loopback targets through ``static_configs`` and no
    remote write: the process then talks to nothing else.
    """
    return _process(
        "prometheus",
        binary("prometheus"),
        workdir,
        config,
        port,
        f"--storage.tsdb.path={workdir / 'data'}",
        "--web.external-url=http://prometheus.example:9090",
    )


@asynccontextmanager
async def _process(
    name: str, executable: str, workdir: Path, config: str, port: int | None, *flags: str
) -> AsyncIterator[Running]:
    """``executable`` with ``config`` and ``flags``, files named after ``name``."""
    config_file, log = _prepare(workdir, name, config)
    for _ in range(1 if port is not None else _START_ATTEMPTS):
        listen = port if port is not None else free_port()
        argv = [
            executable,
            f"--config.file={config_file}",
            f"--web.listen-address=127.0.0.1:{listen}",
            "--log.level=warn",
            *flags,
        ]
        proc = _spawn(argv, log)
        try:
            url = f"http://127.0.0.1:{listen}"
            if await _ready(proc, url):
                yield Running(url, listen, workdir, log)
                return
        finally:
            _stop(proc)
    raise AssertionError(f"{name} did not start; its log:\n{log.read_text()[-3000:]}")


def _prepare(workdir: Path, name: str, config: str) -> tuple[Path, Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / f"{name}.yml"
    config_file.write_text(config)
    return config_file, workdir / f"{name}.log"


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=out)


async def _ready(proc: subprocess.Popen[bytes], url: str) -> bool:
    """True once ``/-/ready`` answers 200; False if the process exited first."""
    async with asyncio.timeout(_READY_TIMEOUT), aiohttp.ClientSession() as session:
        while proc.poll() is None:
            try:
                async with session.get(f"{url}/-/ready") as resp:
                    if resp.status == 200:
                        return True
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # Blocking on purpose: it runs in finally blocks, also while the test is being
    # cancelled, and must not return before the process is gone.
    proc.terminate()
    try:
        proc.wait(timeout=_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass(frozen=True)
class Command:
    """`leak-sidecar run` as a child process, started and listening."""

    proc: asyncio.subprocess.Process
    url: str


async def _copy(stream: asyncio.StreamReader, out: Any) -> None:
    # Keep reading, so that the child never blocks on a full pipe.
    while line := await stream.readline():
        out.write(line)


@asynccontextmanager
async def sidecar_command(config: Path, log: Path, token: str) -> AsyncIterator[Command]:
    """Run `leak-sidecar run --config CONFIG` (JSON logs) until it logs ``sidecar.started``.

    Every line it prints goes to ``log``; its port comes from that event. On exit the
    process is killed if it is still running.
    """
    env = {**os.environ, "LEAK_SIDECAR_TOKEN": token}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "run", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    with log.open("ab") as out:
        copier: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(20):
                while True:
                    line = await proc.stdout.readline()
                    assert line, f"the sidecar exited before it started; see {log}"
                    out.write(line)
                    event = json.loads(line)
                    if event["event"] == "sidecar.started":
                        break
            copier = asyncio.create_task(_copy(proc.stdout, out))
            yield Command(proc, f"http://127.0.0.1:{event['listen'].rpartition(':')[2]}")
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            if copier is not None:
                await copier
