"""The architecture as import-linter checks it (``[tool.importlinter]`` in pyproject.toml).

``lint-imports`` runs in scripts/test; these tests prove that the contracts hold on the
tree and that each one would catch a violation, by planting one in a copy of the package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"]


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    # The copy's own package comes first on sys.path: lint-imports puts the cwd there.
    return subprocess.run(
        [*LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "sidecar", tmp_path / "sidecar")
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_contract() -> None:
    """All four contracts are kept by the package as it is."""
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract", "detail"),
    [
        (
            "sidecar/store.py",
            "from sidecar.rules import engine as _planted",
            "Stages import down the data flow, never up BROKEN",
            "sidecar.store is not allowed to import sidecar.rules",
        ),
        (
            "sidecar/rules/notify.py",
            "from sidecar.actions import dispatch as _planted",
            "Scrape, rules, actions and evidence talk only through core values BROKEN",
            "sidecar.rules is not allowed to import sidecar.actions",
        ),
        (
            "sidecar/evidence/capture.py",
            "from sidecar.scrape import fetch as _planted",
            "Scrape, rules, actions and evidence talk only through core values BROKEN",
            "sidecar.evidence is not allowed to import sidecar.scrape",
        ),
        (
            "sidecar/inject/pod.py",
            "import aiohttp as _planted",
            "The injection is pure BROKEN",
            "sidecar.inject.pod -> aiohttp",
        ),
        (
            "sidecar/inject/settings.py",
            "from sidecar.scrape import fetch as _planted",
            "Stages import down the data flow, never up BROKEN",
            "sidecar.inject is not allowed to import sidecar.scrape",
        ),
        (
            "sidecar/injector/tls.py",
            "from aiohttp import web as _planted",
            "Only the web stage serves HTTP BROKEN",
            "sidecar.injector.tls imports aiohttp.web",
        ),
        (
            "sidecar/supervisor/reload.py",
            "from sidecar.injector import server as _planted",
            "Stages import down the data flow, never up BROKEN",
            "sidecar.supervisor is not allowed to import sidecar.injector",
        ),
        (
            "sidecar/actions/receiver.py",
            "from aiohttp import web as _planted",
            "Only the web stage serves HTTP BROKEN",
            "sidecar.actions.receiver imports aiohttp.web",
        ),
    ],
)
def test_a_planted_violation_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str, detail: str
) -> None:
    """A reversed import, a cross-stage import or aiohttp.web outside web/ fails the lint."""
    root = _copy(tmp_path)
    path = root / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    result = _lint(root)
    assert result.returncode == 1, result.stdout
    assert contract in result.stdout
    assert detail in result.stdout
