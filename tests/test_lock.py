"""The dependency lock (requirements/), checked against pyproject.toml and its consumers.

requirements/update regenerates both files; these tests fail when pyproject.toml changes and
the lock does not follow, so that the lock cannot silently drift from what pyproject declares.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).parent.parent
LOCKS = ROOT / "requirements"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
TEST = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["test"]]
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def pins(name: str) -> dict[str, tuple[Version, int]]:
    """{canonical name: (pinned version, number of hashes)} of one lock file."""
    text = re.sub(r"\\\n", " ", (LOCKS / name).read_text())
    out: dict[str, tuple[Version, int]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        spec, *options = line.split()
        assert spec.count("==") == 1, f"{name}: not pinned with ==: {line[:80]}"
        assert options, f"{name}: {spec} has no --hash"
        assert all(_HASH.fullmatch(o) for o in options), f"{name}: {spec}: {options[:3]}"
        package, version = spec.split("==")
        out[canonicalize_name(package)] = (Version(version), len(options))
    return out


@pytest.mark.parametrize(
    ("lock", "declared"),
    [("runtime.txt", RUNTIME), ("test.txt", RUNTIME + TEST)],
)
def test_lock_pins_every_declared_dependency_within_its_range(
    lock: str, declared: list[Requirement]
) -> None:
    """Each dependency pyproject declares is pinned, hashed, at a version its range allows."""
    pinned = pins(lock)
    for req in declared:
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req} is in pyproject.toml but not in requirements/{lock}"
        version, hashes = pinned[name]
        assert hashes >= 1
        assert req.specifier.contains(version, prereleases=True), (
            f"requirements/{lock} pins {name}=={version}, pyproject.toml asks {req}"
        )


def test_tests_run_the_versions_the_image_ships() -> None:
    """Every package in the runtime lock has the same version in the test lock."""
    runtime, test = pins("runtime.txt"), pins("test.txt")
    assert runtime.keys() <= test.keys()
    assert {n: runtime[n][0] for n in runtime} == {n: test[n][0] for n in runtime}


def test_lock_files_say_how_to_regenerate_them() -> None:
    """Both headers name the one command that regenerates them, and it exists."""
    for name in ("runtime.txt", "test.txt"):
        assert "#    bash requirements/update\n" in (LOCKS / name).read_text()
    assert "uv pip compile pyproject.toml" in (LOCKS / "update").read_text()


def test_ci_installs_the_test_lock_and_the_package_without_dependencies() -> None:
    """scripts/test (which .ci/run calls) installs the hashed test lock, then --no-deps."""
    script = (ROOT / "scripts" / "test").read_text()
    assert "pip install -q --require-hashes -r requirements/test.txt\n" in script
    assert "pip install -q --no-deps -e .\n" in script
    assert "bash scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_image_installs_the_runtime_lock_and_the_package_without_dependencies() -> None:
    """The Dockerfile installs the hashed runtime lock, which .dockerignore lets in."""
    dockerfile = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    assert "--mount=type=bind,source=requirements/runtime.txt,target=/tmp/runtime.txt" in (
        dockerfile
    )
    assert "pip install --require-hashes --only-binary :all: -r /tmp/runtime.txt" in dockerfile
    assert "pip install --no-deps --no-index /wheels/" in dockerfile
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "!requirements/runtime.txt" in ignore
