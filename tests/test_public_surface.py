"""The sidecar's public surface, pinned: commands, routes, metric names, config keys, log events.

Operators script against these, dashboards and rules query them, log pipelines match on
them. A change here must be deliberate: update the pinned list and the CHANGELOG.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

from aiohttp import web
from conftest import config_keys, running
from prometheus_client import CollectorRegistry

from sidecar.cli import _parser
from sidecar.core.config import Config
from sidecar.supervisor import Sidecar

ROOT = Path(__file__).parent.parent

COMMANDS = [
    "run",
    "check-config",
    "check-rules",
    "check-target",
    "test-rules",
    "inject",
    "injector",
    "demo",
    "demo-app",
]

ROUTES = [
    ("GET", "/"),
    ("GET", "/-/healthy"),
    ("GET", "/-/ready"),
    ("GET", "/api/v1/alerts"),
    ("GET", "/api/v1/rules"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/readyz"),
    ("GET", "/v1/alerts"),
    ("GET", "/v1/circuit"),
    ("GET", "/v1/evidence"),
    ("GET", "/v1/evidence/{id}"),
    ("GET", "/v1/evidence/{id}/{file}"),
    ("GET", "/v1/rules"),
    ("POST", "/-/reload"),
    ("POST", "/alerts"),
    ("POST", "/v1/cache/flush"),
    ("POST", "/v1/circuit/break"),
    ("POST", "/v1/circuit/reset"),
    ("POST", "/v1/evidence"),
]

OWN_METRICS = [
    "leak_sidecar_action_retries",
    "leak_sidecar_actions",
    "leak_sidecar_actions_given_up",
    "leak_sidecar_alerts",
    "leak_sidecar_app_memory_limit_bytes",
    "leak_sidecar_build_info",
    "leak_sidecar_circuit_desired_state",
    "leak_sidecar_circuit_generation",
    "leak_sidecar_circuit_holders_dropped",
    "leak_sidecar_circuit_observed_state",
    "leak_sidecar_circuit_state",
    "leak_sidecar_clock_steps",
    "leak_sidecar_config_last_reload_success_timestamp_seconds",
    "leak_sidecar_config_last_reload_successful",
    "leak_sidecar_cooldown_skipped",
    "leak_sidecar_dedupe",
    "leak_sidecar_evidence_bundles",
    "leak_sidecar_evidence_capture_duration_seconds",
    "leak_sidecar_evidence_captures",
    "leak_sidecar_evidence_dropped",
    "leak_sidecar_evidence_failures",
    "leak_sidecar_evidence_skipped",
    "leak_sidecar_forward_retries",
    "leak_sidecar_forwarded_alerts",
    "leak_sidecar_http_unauthorized",
    "leak_sidecar_journal_commits",
    "leak_sidecar_journal_corrupt_lines",
    "leak_sidecar_journal_entries",
    "leak_sidecar_journal_writable",
    "leak_sidecar_journal_write_failures",
    "leak_sidecar_notifications_dropped",
    "leak_sidecar_notifications_errors",
    "leak_sidecar_notifications_queue_length",
    "leak_sidecar_notifications_sent",
    "leak_sidecar_reconcile",
    "leak_sidecar_reconcile_checks",
    "leak_sidecar_reconcile_triggers",
    "leak_sidecar_rule_evaluation_duration_seconds",
    "leak_sidecar_rule_evaluation_failures",
    "leak_sidecar_rule_group_iterations_missed",
    "leak_sidecar_scrape_body_bytes",
    "leak_sidecar_scrape_duration_seconds",
    "leak_sidecar_scrape_errors",
    "leak_sidecar_scrape_interval_seconds",
    "leak_sidecar_scrape_name_collisions",
    "leak_sidecar_scrape_objects_collapsed",
    "leak_sidecar_scrape_retries",
    "leak_sidecar_scrape_series_dropped",
    "leak_sidecar_scrapes",
    "leak_sidecar_series",
    "leak_sidecar_store_retention_seconds",
    "leak_sidecar_store_series",
    "leak_sidecar_target_up",
    "leak_sidecar_webhook_alerts",
    "leak_sidecar_webhook_requests",
]

FLEET_BUDGET_METRICS = [
    "leak_sidecar_fleet_break_wanted",
    "leak_sidecar_fleet_budget_decisions",
    "leak_sidecar_fleet_budget_query_failures",
    "leak_sidecar_fleet_panic",
]
"""Registered only with ``fleet.prometheus_url`` (tests/test_budget.py reads each)."""

INJECTOR_METRICS = ["leak_sidecar_injector_decisions"]
"""Registered by ``leak-sidecar injector`` only."""

LOG_EVENTS = [
    "action.crashed", "action.drain_cancelled", "action.dry_run", "action.gave_up",
    "action.rejected", "action.resumed", "action.retry_scheduled", "action.succeeded",
    "alert.cooldown", "alert.duplicate", "alert.foreign", "alert.invalid_action",
    "circuit.{state}", "circuit.reset_waiting",
    "config.reload_failed", "config.reload_restart_needed", "config.reloaded",
    "evidence.baseline_failed", "evidence.baseline_taken", "evidence.captured",
    "evidence.not_available", "evidence.requested", "evidence.skipped",
    "evidence.write_failed",
    "fleet.budget", "fleet.panic", "fleet.panic_over", "fleet.query_failed",
    "forward.failed", "forward.refused", "forward.retry_scheduled", "forward.sent",
    "demo_app.bind_failed", "demo_app.cache_flushed", "demo_app.call",
    "demo_app.circuit_closed", "demo_app.circuit_opened", "demo_app.leak_set",
    "demo_app.listening", "demo_app.stopped",
    "injector.certificate_reload_failed", "injector.certificate_reloaded",
    "injector.crashed", "injector.decision", "injector.started", "injector.stopped",
    "journal.compacted", "journal.compaction_failed", "journal.corrupt_entry",
    "journal.corrupt_line", "journal.hook_crashed", "journal.replayed",
    "journal.state_dir_unlockable", "journal.state_dir_unusable", "journal.truncate_failed",
    "journal.writable_again", "journal.write_failed",
    "notify.failed", "notify.queue_overflow", "notify.rejected", "notify.retry_scheduled",
    "outbound.reload_failed", "outbound.reloaded",
    "reconcile.app_restarted", "reconcile.bug", "reconcile.check_failed",
    "reconcile.confirmed", "reconcile.generation_behind", "reconcile.retry_scheduled",
    "reconcile.state_mismatch", "reconcile.superseded", "reconcile.waiting",
    "scrape.target_restarted",
    "rules.evaluation_crashed", "rules.evaluation_failed", "rules.for_state_invalid",
    "rules.for_state_loaded", "rules.for_state_restored", "rules.for_state_unreadable",
    "rules.for_state_write_failed", "rules.iterations_missed", "rules.loaded",
    "rules.no_files_matched", "rules.rule_refused", "rules.sample_rejected",
    "rules.send_failed", "rules.series_refused",
    "scrape.bug", "scrape.failed", "scrape.interval_changed", "scrape.retry_scheduled",
    "scrape.target_down", "scrape.target_up", "scrape.warnings",
    "sidecar.crashed", "sidecar.loop_returned", "sidecar.started", "sidecar.stopped",
    "server.connection_refused", "server.handler_crashed",
    "store.clock_stepped_back", "store.retention_capped",
    "webhook.alerts_refused", "webhook.invalid", "webhook.truncated",
]  # fmt: skip


def test_cli_commands() -> None:
    """The subcommands of `leak-sidecar`."""
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == COMMANDS


async def test_routes_and_own_metrics(tmp_path: Path) -> None:
    """A sidecar with the shipped pack serves exactly these routes and own metric families."""
    cfg = Config.validate(
        {
            "app": {"base_url": "http://127.0.0.1:9", "memory_limit_bytes": 2**31},
            "rules": {"files": [str(ROOT / "rules" / "*.yml")]},
            "server": {"listen": "127.0.0.1:0"},
            "state_dir": str(tmp_path),
        }
    )
    registry = CollectorRegistry()
    async with running(Sidecar(cfg, registry=registry)) as sidecar:
        assert sidecar.server is not None
        assert isinstance(sidecar.server.app, web.Application)
        routes = sorted(
            {
                (r.method, r.resource.canonical)
                for r in sidecar.server.app.router.routes()
                if r.resource is not None and r.method != "HEAD"
            }
        )
        assert routes == ROUTES
        own = sorted({m.name for m in registry.collect() if m.name.startswith("leak_sidecar_")})
        assert own == OWN_METRICS


def test_config_keys() -> None:
    """Every configuration key (``token`` comes from the environment or a file)."""
    assert config_keys(Config) == [
        "app.base_url", "app.expvar_path", "app.expvar_port", "app.break_path", "app.reset_path",
        "app.flush_path", "app.state_path", "app.memory_limit_bytes", "app.memory_limit_file",
        "app.http_config.authorization", "app.http_config.basic_auth",
        "app.http_config.tls_config.ca_file", "app.http_config.tls_config.cert_file",
        "app.http_config.tls_config.key_file", "app.http_config.tls_config.server_name",
        "app.http_config.tls_config.insecure_skip_verify",
        "scrape.interval", "scrape.timeout", "scrape.max_interval", "scrape.cost_fraction",
        "scrape.max_body_bytes", "scrape.soft_body_bytes", "scrape.max_object_keys",
        "scrape.max_depth", "scrape.max_series", "scrape.strings", "scrape.max_text_length",
        "scrape.maps", "scrape.metric_relabel_configs", "scrape.retry.attempts",
        "scrape.retry.initial_backoff",
        "scrape.retry.max_backoff", "scrape.retry.max_elapsed",
        "store.max_retention", "store.max_series",
        "rules.files", "rules.evaluation_interval", "rules.external_labels",
        "rules.resend_delay", "rules.alertmanager_url", "rules.external_url",
        "rules.outage_tolerance", "rules.for_grace_period",
        "actions.timeout", "actions.retry.attempts", "actions.retry.initial_backoff",
        "actions.retry.max_backoff", "actions.retry.max_elapsed",
        "actions.reconcile.initial_backoff", "actions.reconcile.max_backoff",
        "actions.reconcile.interval", "actions.cooldowns",
        "actions.routes", "actions.dedupe_ttl", "actions.dedupe_max",
        "actions.journal_max_entries", "actions.journal_max_bytes", "actions.drain_timeout",
        "breaker.min_open", "breaker.max_open", "breaker.probation", "breaker.jitter",
        "breaker.check_interval", "breaker.dry_run",
        "evidence.enabled", "evidence.pprof_url", "evidence.heap_path",
        "evidence.goroutine_path", "evidence.allocs_path", "evidence.timeout",
        "evidence.max_profile_bytes", "evidence.alertnames", "evidence.cooldown",
        "evidence.warmup", "evidence.baseline_interval", "evidence.external_url",
        "evidence.top", "evidence.max_bundles", "evidence.max_bytes",
        "fleet.forward.allow", "fleet.forward.port", "fleet.forward.label",
        "fleet.forward.instance", "fleet.forward.timeout", "fleet.forward.retry.attempts",
        "fleet.forward.retry.initial_backoff", "fleet.forward.retry.max_backoff",
        "fleet.forward.retry.max_elapsed", "fleet.prometheus_url", "fleet.workload",
        "fleet.max_open_fraction", "fleet.panic_fraction", "fleet.settle",
        "fleet.query_timeout", "fleet.on_query_failure",
        "server.listen", "server.token_file", "server.allow_unauthenticated",
        "server.max_body_bytes", "server.header_timeout", "server.body_timeout",
        "server.max_connections", "server.shutdown_grace",
        "log.format", "log.level", "state_dir", "token",
    ]  # fmt: skip


_LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}


def _log_events() -> set[str]:
    events: set[str] = set()
    for path in (ROOT / "sidecar").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            if isinstance(node.func, ast.Attribute) and node.func.attr in _LEVELS and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    events.add(first.value)
                elif isinstance(first, ast.JoinedStr):
                    events.add("circuit.{state}")
            for kw in node.keywords:  # retrying(event="...") names its log event
                if kw.arg == "event" and isinstance(kw.value, ast.Constant):
                    events.add(str(kw.value.value))
    return events


def test_log_event_names() -> None:
    """Log events are stable dotted ids; the set is pinned."""
    assert sorted(_log_events()) == sorted(LOG_EVENTS)


def test_readme_metric_table_lists_every_own_metric() -> None:
    """The README's table of own metrics names each family the code registers, no other."""
    text = (ROOT / "README.md").read_text()
    section = text.split("The sidecar's own metrics:", 1)[1].split("\n\n", 2)[1]
    rows = [line.split(" | ")[0] for line in section.splitlines() if line.startswith("| `")]
    named = {
        re.sub(r"_total$", "", name)
        for row in rows
        for name in re.findall(r"`(leak_sidecar_[a-z_]+)", row)
    }
    assert sorted(named) == sorted(OWN_METRICS + FLEET_BUDGET_METRICS + INJECTOR_METRICS)


def test_readme_command_table_names_every_command_and_flag() -> None:
    """The README's command table has a row per subcommand naming each of its flags."""
    text = (ROOT / "README.md").read_text()
    table = text.split("## Commands\n", 1)[1].split("\n## ", 1)[0]
    rows = {
        line.split("`")[1].split()[1]: line
        for line in table.splitlines()
        if line.startswith("| `leak-sidecar ")
    }
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(rows) == sorted(COMMANDS)
    missing = [
        (name, flag)
        for name, parser in sub.choices.items()
        for action in parser._actions
        for flag in action.option_strings
        if flag.startswith("--") and flag != "--help" and flag not in rows[name]
    ]
    assert missing == []


def test_readme_http_api_names_every_route() -> None:
    """Every route the sidecar serves is named in the README's HTTP API section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## HTTP API\n", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"(/[-a-z0-9/{}.]*)", section))
    assert sorted({path for _, path in ROUTES} - named) == []
