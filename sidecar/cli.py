"""Command line: parse arguments, hand over to the stage that does the work.

Exit codes: 0 success, 1 a check or test failed, 2 the configuration (or the command
line) is wrong: one ``key: problem`` line each on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from sidecar import __version__
from sidecar.core.config import Config
from sidecar.core.config_load import ENV_CONFIG, load
from sidecar.core.errors import ConfigError

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="leak-sidecar",
        description="Watch a Go service's expvar and stop its leaks before they take it down.",
    )
    p.add_argument("--version", action="version", version=f"leak-sidecar {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the sidecar next to the app")
    run.add_argument(
        "--config", help=f"config file (default: env {ENV_CONFIG}, else built-in defaults)"
    )
    chk = sub.add_parser("check-config", help="validate a config file and exit")
    chk.add_argument("file", help="the config file")
    cr = sub.add_parser(
        "check-rules",
        help="validate rule files like `promtool check rules`, plus what the engine can run",
    )
    cr.add_argument("files", nargs="+", metavar="FILE")
    tr = sub.add_parser(
        "test-rules", help="run rule unit-test files in `promtool test rules` format"
    )
    tr.add_argument("files", nargs="+", metavar="FILE")
    demo = sub.add_parser(
        "demo", help="watch the sidecar stop a leaking demo app, on loopback, narrated"
    )
    demo.add_argument(
        "--speed", type=float, default=60.0, help="time compression (default %(default)gx)"
    )
    da = sub.add_parser("demo-app", help="serve the demo target app (a leaking Go service)")
    da.add_argument("--listen", default="127.0.0.1:8080", help="host:port (default %(default)s)")
    da.add_argument("--leak", action="store_true", help="start with the leak switched on")
    da.add_argument(
        "--speed", type=float, default=1.0, help="run the simulation this many times faster"
    )
    return p


def _config_path(arg: str | None, env: Mapping[str, str]) -> Path | None:
    value = arg if arg is not None else env.get(ENV_CONFIG)
    return Path(value) if value else None


def _load_config(path: Path | None, env: Mapping[str, str], err: TextIO) -> Config | None:
    """Load the config, printing each problem on ``err``; None when it is invalid."""
    try:
        return load(path, env)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=err)
        return None


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``leak-sidecar`` command; returns the exit code."""
    environ = os.environ if env is None else env
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        cfg = _load_config(Path(args.file), environ, sys.stderr)
        if cfg is None:
            return EXIT_CONFIG
        print(f"{args.file}: OK")
        return EXIT_OK
    if args.command == "check-rules":
        from sidecar.rules.files import check_rules  # noqa: PLC0415 -- PromQL loads only when needed

        return check_rules(args.files, sys.stdout, sys.stderr)
    if args.command == "test-rules":
        from sidecar.rules.unittest.runner import test_rules  # noqa: PLC0415

        return test_rules(args.files, sys.stdout, sys.stderr)
    if args.command == "demo":
        from sidecar.demo.narrator import main as demo_main  # noqa: PLC0415

        if not 1 <= args.speed <= 600:
            print(f"demo: --speed: expected 1 to 600, got {args.speed:g}", file=sys.stderr)
            return EXIT_CONFIG
        return demo_main(args.speed)
    if args.command == "demo-app":
        from sidecar.demo.app import run_demo_app  # noqa: PLC0415

        return run_demo_app(args.listen, args.leak, speed=args.speed)
    if args.command == "run":
        cfg = _load_config(_config_path(args.config, environ), environ, sys.stderr)
        if cfg is None:
            return EXIT_CONFIG
        from sidecar.supervisor import run  # noqa: PLC0415 -- keep `check-*` commands light

        return run(cfg)
    raise AssertionError(args.command)  # argparse only admits the commands above
