"""The Helm chart's templates, parsed by Go's text/template: the parser Helm itself uses.

helm is not available to the tests, so nothing is rendered; ``tests/fixtures/chartparse``
declares Helm's and Sprig's functions as stubs (the parser insists that every function a
template calls exists) and parses every file under ``charts/leak-sidecar/templates``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parent.parent.parent
TEMPLATES = ROOT / "charts" / "leak-sidecar" / "templates"
PARSER = ROOT / "tests" / "fixtures" / "chartparse"


def parse(templates: Path) -> subprocess.CompletedProcess[str]:
    go = shutil.which("go")
    assert go is not None, "the Go toolchain (golang-go) is needed for this test"
    return subprocess.run(
        [go, "run", "main.go", str(templates)],
        cwd=PARSER,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_chart_template_parses() -> None:
    """Every template, helpers and NOTES.txt included, parses without error."""
    result = parse(TEMPLATES)
    count = len(list(TEMPLATES.iterdir()))
    assert (result.returncode, result.stdout) == (0, f"parsed {count} templates\n")


def test_parser_reports_unknown_functions_and_unclosed_blocks(tmp_path: Path) -> None:
    """A misspelt function and a missing end are each reported with file and line."""
    (tmp_path / "a.yaml").write_text("x: {{ .Values.x | nindnet 2 }}\n")
    (tmp_path / "b.yaml").write_text("{{- if .Values.y }}\ny: 1\n")
    result = parse(tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        'template: a.yaml:1: function "nindnet" not defined',
        "template: b.yaml:3: unexpected EOF",
    ]
