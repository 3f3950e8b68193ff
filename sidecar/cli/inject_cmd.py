"""``leak-sidecar inject``: read manifests from files or stdin, write them injected to stdout.

``kubectl get deploy orders -o yaml | leak-sidecar inject --all | kubectl apply -f -``.
Every input is read and injected before a byte is written: a refusal or a bad file
leaves stdout empty, so that a pipe into ``kubectl apply`` applies nothing half-done.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, TextIO

from sidecar.core.errors import ConfigError, InjectError, ManifestError
from sidecar.inject.manifests import inject_manifests
from sidecar.inject.settings import load_settings

__all__ = ["inject_command"]

EXIT_REFUSED = 1
EXIT_INPUT = 2


def inject_command(
    files: Sequence[str],
    settings_path: Path | None,
    *,
    inject_all: bool,
    stdin: BinaryIO,
    out: TextIO,
    err: TextIO,
) -> int:
    """Inject every opted-in workload of ``files`` (``-`` or none: stdin); the exit code."""
    try:
        settings = load_settings(settings_path)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=err)
        return EXIT_INPUT
    parts: list[str] = []
    injected: list[str] = []
    try:
        for name in files or ["-"]:
            source = "stdin" if name == "-" else name
            text = _read(stdin if name == "-" else Path(name), source)
            result = inject_manifests(text, settings, inject_all=inject_all, source=source)
            parts.append(result.text)
            injected.extend(result.objects)
    except ManifestError as exc:
        print(exc, file=err)
        return EXIT_INPUT
    except InjectError as exc:
        print(exc, file=err)
        return EXIT_REFUSED
    out.write(_join(parts))
    out.flush()
    for what in injected:
        print(f"injected: {what}", file=err)
    return 0


def _read(source: BinaryIO | Path, name: str) -> str:
    try:
        data = source.read_bytes() if isinstance(source, Path) else source.read()
    except OSError as exc:
        raise ManifestError("file", f"{name}: cannot read: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            "file", f"{name}: expected UTF-8 YAML, got a byte it cannot hold at offset {exc.start}"
        ) from None


def _join(parts: list[str]) -> str:
    """The streams one after another, each starting a new document."""
    text = ""
    for part in parts:
        if not part:
            continue
        if text:
            text += "" if text.endswith("\n") else "\n"
            text += "" if part.startswith("---") else "---\n"
        text += part
    return text
