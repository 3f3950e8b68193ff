"""Command line: parse arguments, hand over to the stage that does the work.

Exit codes: 0 success, 1 a check or test failed, 2 the configuration (or the command
line) is wrong: one ``key: problem`` line each on stderr. Each subcommand's ``--help``
states its own.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from sidecar import __version__
from sidecar.core.config import ENV_TOKEN, Config
from sidecar.core.config_load import ENV_CONFIG, load
from sidecar.core.errors import ConfigError

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_BROKEN_PIPE = 141
"""What a shell reports for a command a closed pipe stopped (128 + SIGPIPE)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="leak-sidecar",
        description="Watch a Go service's expvar and stop its leaks before they take it down.",
    )
    p.add_argument("--version", action="version", version=f"leak-sidecar {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = _command(
        sub,
        "run",
        "run the sidecar next to the app",
        "Scrape the app's expvar, evaluate the rules, act on alerts, serve the HTTP API. "
        "Without rules.files in the config the packaged rule pack is used; relative paths "
        "in the config are relative to its directory. SIGHUP (or POST /-/reload) re-reads "
        "the config and the rule files and applies them; SIGTERM stops.",
        "exit codes: 0 stopped by SIGTERM/SIGINT, 1 a loop failed, "
        "2 invalid config, rules or memory-limit file, or the state dir is locked or its "
        "journal unreadable",
    )
    run.add_argument(
        "--config", help=f"config file (default: env {ENV_CONFIG}, else built-in defaults)"
    )
    # Prometheus's and Alertmanager's flag names, over the config's keys.
    _log_flags(run, overrides=True)
    run.add_argument(
        "--web.listen-address", dest="listen", metavar="HOST:PORT",
        help="overrides server.listen (checked as the key is: beyond loopback needs a token)",
    )  # fmt: skip
    # The per-pod settings of an injected sidecar (its pod's annotations), over the shared
    # config every pod of the namespace mounts.
    run.add_argument(
        "--app.expvar-port", dest="expvar_port", type=int, metavar="PORT",
        help="overrides app.expvar_port: expvar on this port of app.base_url's host",
    )  # fmt: skip
    run.add_argument(
        "--app.expvar-path", dest="expvar_path", metavar="PATH", help="overrides app.expvar_path"
    )
    run.add_argument(
        "--breaker.dry-run", dest="dry_run", action="store_const", const=True,
        help="overrides breaker.dry_run: decide and log, never call the app",
    )  # fmt: skip
    chk = _command(
        sub,
        "check-config",
        "validate a config file and every file it names, and exit",
        "Like `promtool check config`: the file, then the rule files it names (parsed as "
        "check-rules does), the memory-limit file and the state dir; one `key: problem` "
        "line each on stderr. What depends on this environment rather than on the file "
        "(unset ${VAR}, no token, a state dir this user cannot write) is a `warning:` "
        "line unless --strict-env.",
        "exit codes: 0 valid (warnings may be printed), 1 the config loads but a file or "
        "directory it names is wrong, 2 the config itself is invalid",
    )
    chk.add_argument("file", help="the config file")
    chk.add_argument(
        "--strict-env",
        action="store_true",
        help="treat what this environment lacks (${VAR}, the token) as errors, as run does",
    )
    cr = _command(
        sub,
        "check-rules",
        "validate rule files like `promtool check rules`, plus what the engine can run",
        "Parse each Prometheus rule file, compile every expression and template; errors "
        "read like promtool's.",
        "exit codes: 0 all files valid, 1 a file has a problem",
    )
    cr.add_argument("files", nargs="+", metavar="FILE")
    ct = _command(
        sub,
        "check-target",
        "scrape a live app once and say which rules can evaluate",
        "Scrape URL (default: the configured app's expvar) as run does, relabelling "
        "included, and list each configured rule (the packaged pack by default) as OK or "
        "MISSING with the metric names it lacks.",
        "exit codes: 0 every rule can evaluate, 1 some cannot, 2 invalid config or rules, "
        "or the target cannot be scraped",
    )
    ct.add_argument("url", nargs="?", help="expvar URL (default: the configured app's)")
    ct.add_argument(
        "--config", help=f"config file (default: env {ENV_CONFIG}, else built-in defaults)"
    )
    tr = _command(
        sub,
        "test-rules",
        "run rule unit-test files in `promtool test rules` format",
        "Run promtool-format rule unit tests against the embedded engine.",
        "exit codes: 0 all tests passed, 1 a test failed or a file is invalid",
    )
    tr.add_argument("files", nargs="+", metavar="FILE")
    inj = _command(
        sub,
        "inject",
        "add the sidecar to Kubernetes manifests that opt in",
        "Read Kubernetes YAML (FILEs, or stdin for none or '-'; multi-document; Deployment, "
        "StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod and List items) and write "
        "it to stdout with the sidecar added to each pod template annotated leak-sidecar.io/"
        'inject: "true" (every one not annotated "false" with --all). Everything else is '
        "written back as it came. Nothing is written unless every input could be done.",
        "exit codes: 0 written, 1 a workload that opts in cannot be injected (its app "
        "container cannot be told, an annotation is invalid), 2 invalid YAML, an unreadable "
        "file or an invalid --inject.config",
    )
    inj.add_argument("files", nargs="*", metavar="FILE", help="manifests (default: stdin)")
    inj.add_argument(
        "--all", dest="inject_all", action="store_true",
        help='inject every workload not annotated leak-sidecar.io/inject: "false"',
    )  # fmt: skip
    inj.add_argument(
        "--inject.config", dest="inject_config", metavar="PATH",
        help="injection settings file (image, resources, native or classic, names)",
    )  # fmt: skip
    wh = _command(
        sub,
        "injector",
        "serve the mutating admission webhook that injects the sidecar into new pods",
        'HTTPS: POST /inject/pod injects a pod annotated leak-sidecar.io/inject: "true"; '
        'POST /inject/namespace every pod not annotated "false". Every review is allowed, '
        "patched (a JSONPatch) or not; a body that is not an admission.k8s.io/v1 "
        "AdmissionReview gets a 400. The certificate and key are read again when they "
        "change. GET /healthz, /readyz, /metrics. SIGTERM stops.",
        "exit codes: 0 stopped by SIGTERM/SIGINT, 1 crashed, 2 invalid --inject.config, "
        "certificate or key, or the address cannot be listened on",
    )
    wh.add_argument(
        "--web.listen-address", dest="listen", metavar="HOST:PORT", default="0.0.0.0:9443",
        help="where to serve HTTPS (default %(default)s)",
    )  # fmt: skip
    wh.add_argument("--tls.cert-file", dest="cert_file", metavar="PATH", required=True,
                    help="serving certificate (PEM), re-read when it changes")  # fmt: skip
    wh.add_argument("--tls.key-file", dest="key_file", metavar="PATH", required=True,
                    help="its private key (PEM), re-read when it changes")  # fmt: skip
    wh.add_argument(
        "--inject.config", dest="inject_config", metavar="PATH",
        help="injection settings file, as for inject",
    )  # fmt: skip
    _log_flags(wh, overrides=False)
    demo = _command(
        sub,
        "demo",
        "watch the sidecar stop a leaking demo app, on loopback, narrated",
        "A leaking stand-in app and a real sidecar (the shipped pack) on free loopback "
        "ports, time compressed; every line is observed over HTTP. With --keep both stay "
        "up after the story, with the status page's URL and curl commands printed.",
        "exit codes: 0 the story was told (a flush, the break before the limit, the "
        "reset), or --keep stopped by Ctrl-C/SIGTERM after it; 1 it was not; 2 a bad "
        "--speed; 130 interrupted during the story; 141 the output pipe closed",
    )
    demo.add_argument(
        "--speed", type=float, default=60.0, help="time compression (default %(default)gx)"
    )
    demo.add_argument(
        "--keep",
        action="store_true",
        help="after the story, keep the app and the sidecar running until Ctrl-C or SIGTERM",
    )
    da = sub.add_parser("demo-app", help="serve the demo target app (a leaking Go service)")
    da.add_argument("--listen", default="127.0.0.1:8080", help="host:port (default %(default)s)")
    da.add_argument("--leak", action="store_true", help="start with the leak switched on")
    da.add_argument(
        "--speed", type=float, default=1.0, help="run the simulation this many times faster"
    )
    return p


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
    exit_codes: str,
) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=description, epilog=exit_codes)


def _config_path(arg: str | None, env: Mapping[str, str]) -> Path | None:
    value = arg if arg is not None else env.get(ENV_CONFIG)
    return Path(value) if value else None


def _log_flags(p: argparse.ArgumentParser, *, overrides: bool) -> None:
    """``--log.level`` and ``--log.format``: over the config's ``log`` keys (``run``), or
    the whole log setup of a command without a config (default info, auto)."""
    for flag, choices, default in (
        ("level", ("debug", "info", "warning", "error"), "info"),
        ("format", ("auto", "json", "console"), "auto"),
    ):
        p.add_argument(
            f"--log.{flag}",
            dest=f"log_{flag}",
            choices=choices,
            default=None if overrides else default,
            help=f"overrides log.{flag}" if overrides else "(default %(default)s)",
        )


def _load_config(
    path: Path | None,
    env: Mapping[str, str],
    err: TextIO,
    overrides: Mapping[str, object] | None = None,
) -> Config | None:
    """Load the config, printing each problem on ``err``; None when it is invalid."""
    try:
        return load(path, env, overrides)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=err)
        return None


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``leak-sidecar`` command; returns the exit code."""
    environ = os.environ if env is None else env
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args, environ)
    except BrokenPipeError:
        # `leak-sidecar demo | head`: the reader left. Stop quietly, as Unix tools do, and
        # keep the interpreter's final flush of stdout from raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _dispatch(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if args.command == "check-config":
        from sidecar.cli.config_check import check_config  # noqa: PLC0415 -- PromQL loads only here

        return check_config(
            Path(args.file), environ, strict_env=args.strict_env, out=sys.stdout, err=sys.stderr
        )
    if args.command == "check-rules":
        from sidecar.rules.files import check_rules  # noqa: PLC0415 -- PromQL loads only when needed

        return check_rules(args.files, sys.stdout, sys.stderr)
    if args.command == "test-rules":
        from sidecar.rules.unittest.runner import test_rules  # noqa: PLC0415

        return test_rules(args.files, sys.stdout, sys.stderr)
    if args.command == "check-target":
        # It never listens: a missing token must not stop a look at the app's names.
        looking = {ENV_TOKEN: "check-target-never-listens", **environ}
        cfg = _load_config(_config_path(args.config, environ), looking, sys.stderr)
        if cfg is None:
            return EXIT_CONFIG
        from sidecar.cli.target_check import check_target  # noqa: PLC0415 -- PromQL loads only here

        return check_target(cfg, args.url, sys.stdout, sys.stderr)
    if args.command == "inject":
        from sidecar.cli.inject_cmd import inject_command  # noqa: PLC0415

        settings = Path(args.inject_config) if args.inject_config else None
        return inject_command(
            args.files,
            settings,
            inject_all=args.inject_all,
            stdin=sys.stdin.buffer,
            out=sys.stdout,
            err=sys.stderr,
        )
    if args.command == "injector":
        from sidecar.injector.server import run_injector  # noqa: PLC0415

        return run_injector(
            listen=args.listen,
            cert_file=Path(args.cert_file),
            key_file=Path(args.key_file),
            settings_path=Path(args.inject_config) if args.inject_config else None,
            log_format=args.log_format,
            log_level=args.log_level,
        )
    if args.command == "demo":
        from sidecar.demo.narrator import main as demo_main  # noqa: PLC0415

        if not 1 <= args.speed <= 600:
            print(f"demo: --speed: expected 1 to 600, got {args.speed:g}", file=sys.stderr)
            return EXIT_CONFIG
        return demo_main(args.speed, keep=args.keep)
    if args.command == "demo-app":
        from sidecar.demo.app_cmd import run_demo_app  # noqa: PLC0415

        return run_demo_app(args.listen, args.leak, speed=args.speed)
    if args.command == "run":
        flags: dict[str, object] = {"log.level": args.log_level, "log.format": args.log_format}
        flags["server.listen"] = args.listen
        flags["app.expvar_port"] = args.expvar_port
        flags["app.expvar_path"] = args.expvar_path
        flags["breaker.dry_run"] = args.dry_run
        overrides = {key: value for key, value in flags.items() if value is not None}
        cfg = _load_config(_config_path(args.config, environ), environ, sys.stderr, overrides)
        if cfg is None:
            return EXIT_CONFIG
        from sidecar.supervisor import run  # noqa: PLC0415 -- keep `check-*` commands light

        return run(cfg, _config_path(args.config, environ), environ)
    raise AssertionError(args.command)  # argparse only admits the commands above
