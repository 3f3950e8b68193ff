"""schemathesis against a live sidecar: its own OpenAPI document, with the token.

The real `leak-sidecar run` on loopback, the real schemathesis command, bounded: a fixed
seed and a few examples per operation. It must find no 5xx, no status, content type,
header or body outside the document, no schema-violating request accepted, and the
sidecar must still be running with no handler crashed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from live_support import TOKEN, live_sidecar, stub_app

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "unsupported_method",
        "missing_required_header",
    ]
)


def test_schemathesis_finds_nothing_outside_the_document(tmp_path: Path) -> None:
    """Every operation, fuzzed: 0 failures, and the sidecar survives it all."""
    with stub_app() as app, live_sidecar(tmp_path / "sidecar", app.url) as sidecar:
        done = subprocess.run(
            [
                # The module, not the `st` script: it runs wherever this Python's packages are.
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"http://127.0.0.1:{sidecar.port}/openapi.json",
                "--header",
                f"Authorization: Bearer {TOKEN}",
                "--checks",
                CHECKS,
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--max-examples",
                "8",
                "--seed",
                "1",
                "--generation-database",
                "none",
                "--request-timeout",
                "10",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
            cwd=tmp_path,
        )
        out = done.stdout + done.stderr
        assert done.returncode == 0, out[-6000:]
        assert "Operations:       35 selected / 35 total" in out, out[-3000:]
        assert sidecar.proc.poll() is None
    log = sidecar.log.read_text()
    assert "server.handler_crashed" not in log
