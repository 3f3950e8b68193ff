"""The embedded rule engine: groups evaluated on Prometheus's schedule, alerts handed on.

Each group runs in its own task, as each Prometheus rule group runs in its own
goroutine (``Group.run`` in ``rules/manager.go``):

- evaluation timestamps are slotted: ``interval`` apart, at an offset within the
  interval derived from a hash of the group's file and name, so groups spread out and a
  restart keeps the same slots; deadlines are kept on the monotonic clock;
- an evaluation that overruns never stacks: the next one starts at once, the slots it
  skipped are counted as missed and the one after is back on the grid;
- rules of a group run in order at the same timestamp; a recording rule's output is
  written at that timestamp, so later rules of the group read it; alerting rules write
  ``ALERTS``/``ALERTS_FOR_STATE`` the same way; each rule writes under its own origin, so
  a vanished output gets a staleness marker;
- an expression that fails marks its rule unhealthy with the error and the group goes
  on; the next evaluation tries again;
- after a start, the second evaluation restores the ``for`` state (see ``rulestate``);
- alerts due for (re-)sending go to the injected ``send`` callback as ``model.Alert``,
  with the external labels added where the alert lacks them, as Prometheus's notifier.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sidecar.core.config import RulesConfig
from sidecar.core.errors import RuleError
from sidecar.core.loops import Sleep, pause, wait_any
from sidecar.core.model import Alert, LabelSet, fingerprint
from sidecar.core.times import ms_to_datetime
from sidecar.rules.alerting import ActiveAlert, AlertingRule, Rule
from sidecar.rules.forstate import FILE_NAME, ForState, restore_rule
from sidecar.rules.groups import Group, RuleSet
from sidecar.rules.templates.funcs import table_link
from sidecar.store import Store, StoreView

__all__ = [
    "EventLog",
    "RuleEngine",
    "Send",
    "eval_group",
    "to_model_alert",
]

log = structlog.get_logger(__name__)

Send = Callable[[list[Alert]], Awaitable[None]]
"""Receives the alerts due at one group evaluation; should hand them on quickly."""


class EventLog(Protocol):
    """Where ``eval_group`` reports problems: a structlog logger, or a silent stand-in."""

    def warning(self, event: str, **facts: Any) -> Any:
        """Report a problem."""

    def error(self, event: str, **facts: Any) -> Any:
        """Report a bug."""


def eval_group(
    group: Group,
    store: Store,
    t: int,
    clock: Callable[[], float] = time.time,
    events: EventLog = log,
) -> list[AlertingRule]:
    """Evaluate every rule of ``group`` at ``t`` in order; the alerting rules that succeeded.

    A failing rule is marked ``err`` with its message and writes nothing (no staleness
    markers either, as in Prometheus); ``group.failed`` lists the failed rules' names.
    """
    ok: list[AlertingRule] = []
    group.failed = []
    for i, rule in enumerate(group.rules):
        start = clock()
        try:
            samples = rule.eval(store, t, group.spec.limit)
        except RuleError as exc:
            _fail(group, rule, i, exc.message, events)
        except Exception as exc:  # noqa: BLE001 - one broken rule must not stop the group
            events.error("rules.evaluation_crashed", group=group.key, rule=rule.name, exc_info=exc)
            _fail(group, rule, i, f"internal error: {exc!r}", events)
        else:
            rule.health, rule.last_error = "ok", ""
            samples, conflict = _appendable(store, t, samples)
            if conflict:
                # As the TSDB appender: the sample is dropped and the rule marked, but it
                # is no evaluation failure and its alerts still go out.
                rule.health, rule.last_error = "err", conflict
                events.warning(
                    "rules.sample_rejected", group=group.key, rule=rule.name, error=conflict
                )
            result = store.ingest(t, samples, origin=group.origin(i))
            if result.refused:
                events.warning(
                    "rules.series_refused", group=group.key, rule=rule.name, refused=result.refused
                )
            if isinstance(rule, AlertingRule):
                ok.append(rule)
        finally:
            rule.evaluation_ms = (clock() - start) * 1000
            rule.evaluation_at = round(start * 1000)
    return ok


def _appendable(
    store: StoreView, t: int, samples: dict[LabelSet, float]
) -> tuple[dict[LabelSet, float], str]:
    """The samples Prometheus's storage would accept at ``t``, and the last refusal."""
    keep: dict[LabelSet, float] = {}
    conflict = ""
    for labels, value in samples.items():
        series = store.get(labels)
        last = series.last() if series is not None else None
        if last is not None and t <= last[0]:
            if t < last[0]:
                conflict = "out of order sample"
                continue
            if struct.pack("<d", value) != struct.pack("<d", last[1]):
                conflict = "duplicate sample for timestamp"
                continue
        keep[labels] = value
    return keep, conflict


def _fail(group: Group, rule: Rule, index: int, message: str, events: EventLog) -> None:
    rule.health, rule.last_error = "err", message
    group.failed.append(rule.name)
    events.warning(
        "rules.evaluation_failed", group=group.key, rule=rule.name, index=index, error=message
    )


def to_model_alert(
    a: ActiveAlert, expr: str, external_labels: Mapping[str, str], external_url: str
) -> Alert:
    """Prometheus's ``SendAlerts`` plus the notifier's external labels, as ``model.Alert``."""
    labels = dict(a.labels)
    for k, v in external_labels.items():
        labels.setdefault(k, v)
    resolved = a.resolved_at is not None
    ends = a.resolved_at if resolved else a.valid_until
    return Alert(
        status="resolved" if resolved else "firing",
        labels=labels,
        annotations=dict(a.annotations),
        starts_at=ms_to_datetime(a.fired_at if a.fired_at is not None else a.active_at),
        ends_at=ms_to_datetime(ends) if ends is not None else None,
        generator_url=external_url + table_link(expr) if external_url else "",
        fingerprint=fingerprint(labels),
    )


def _slot_offset(group: Group) -> int:
    # Prometheus hashes the labels {file, name} with xxhash; FNV-1a over the same bytes
    # spreads groups just as well without another dependency.
    return int(fingerprint({"file": group.spec.file, "name": group.spec.name}), 16)


class RuleEngine:
    """Runs every group forever; see the module docstring for the semantics."""

    def __init__(
        self,
        groups: Sequence[Group] | RuleSet,
        store: Store,
        cfg: RulesConfig,
        *,
        registry: CollectorRegistry,
        send: Send,
        state_dir: Path | None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.send = send
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.external_url = cfg.external_url or ""
        self.rules = groups if isinstance(groups, RuleSet) else RuleSet(groups)
        self._group_stops: list[asyncio.Event] = []
        self._tg: asyncio.TaskGroup | None = None
        self.for_state = ForState(state_dir / FILE_NAME if state_dir is not None else None)
        self.for_state.load()
        self.for_state.keep_only(g.key for g in self.groups)
        self._duration = Histogram(
            "leak_sidecar_rule_evaluation_duration_seconds",
            "Time taken to evaluate one rule, by rule group.",
            ["rule_group"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self._failures = Counter(
            "leak_sidecar_rule_evaluation_failures_total",
            "Rule evaluations that failed, by rule group.",
            ["rule_group"],
            registry=registry,
        )
        self._missed = Counter(
            "leak_sidecar_rule_group_iterations_missed_total",
            "Rule group evaluations skipped because the previous one ran too long.",
            ["rule_group"],
            registry=registry,
        )
        self._alerts = Gauge(
            "leak_sidecar_alerts",
            "Alerts of the embedded rule engine, by alert name and state.",
            ["alertname", "state"],
            registry=registry,
        )
        self._label_series()

    def _label_series(self) -> None:
        for g in self.groups:
            self._failures.labels(g.key)
            self._missed.labels(g.key)
            for rule in g.alerting():
                for state in ("pending", "firing"):
                    self._alerts.labels(rule.name, state).set(0)

    async def run(self, stop: asyncio.Event) -> None:
        """Evaluate every group on its schedule until ``stop`` is set.

        With no rules (an actuator-only sidecar) it only waits for ``stop``.
        """
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            self._start_groups()
            while True:
                await wait_any(stop.wait(), self.rules.changed.wait())
                if stop.is_set():
                    break
                self.rules.changed.clear()
                self._swapped()
            self._stop_groups()
            self._tg = None

    def reconfigure(self, cfg: RulesConfig) -> None:
        """Use ``cfg``'s resend delay, grace periods and external labels and URL from the
        next evaluation on (a reload; the groups themselves are swapped through ``rules``)."""
        self.cfg = cfg
        self.external_url = cfg.external_url or ""

    @property
    def groups(self) -> list[Group]:
        """The groups evaluated now (``rules.groups``)."""
        return self.rules.groups

    def _start_groups(self) -> None:
        if self._tg is None:  # not running: the groups start with run()
            return
        for g in self.groups:
            own = asyncio.Event()
            self._group_stops.append(own)
            self._tg.create_task(self._run_group(g, own), name=f"rules:{g.key}")

    def _stop_groups(self) -> None:
        for own in self._group_stops:
            own.set()
        self._group_stops = []

    def _swapped(self) -> None:
        # A reload swapped ``rules.groups``: the old groups' tasks end after their
        # evaluation in progress; the new ones start on their own schedule. The reload
        # carried the alert state over (``carry_state``) before.
        self._stop_groups()
        self.for_state.keep_only(g.key for g in self.groups)
        self._alerts.clear()
        self._label_series()
        self._start_groups()

    def _now_ms(self, anchor: tuple[float, float]) -> int:
        wall, mono = anchor
        return round((wall + self.monotonic() - mono) * 1000)

    async def _run_group(self, g: Group, stop: asyncio.Event) -> None:
        interval = g.interval_ms
        anchor = (self.clock(), self.monotonic())
        now = self._now_ms(anchor)
        offset = _slot_offset(g) % interval
        eval_ts = now - (now - offset) % interval + interval
        if await pause(stop, max(0, eval_ts - now) / 1000, self.sleep):
            return
        next_tick = eval_ts + interval
        await self.iterate(g, eval_ts)
        restore = True
        while True:
            now = self._now_ms(anchor)
            if now < next_tick:
                if await pause(stop, (next_tick - now) / 1000, self.sleep):
                    return
                next_tick += interval
            else:
                # Go's ticker drops the ticks a slow receiver missed and keeps its phase.
                next_tick += ((now - next_tick) // interval + 1) * interval
            # Never re-evaluate a timestamp, even if a sleep returned early.
            missed = max(0, (self._now_ms(anchor) - eval_ts) // interval - 1)
            if missed:
                self._missed.labels(g.key).inc(missed)
                log.warning("rules.iterations_missed", group=g.key, missed=missed)
            eval_ts += (missed + 1) * interval
            await self.iterate(g, eval_ts)
            if restore:
                # Like Prometheus, restore after the second evaluation: by then recording
                # rules have fresh values the alerts may depend on.
                self.restore(g, self._now_ms(anchor))
                restore = False

    def restore(self, g: Group, now_ms: int) -> None:
        """Restore the group's ``for`` state from the state file; ALERTS are written after."""
        entries = self.for_state.groups.get(g.key, {})
        for rule in g.alerting():
            if rule.restored:
                continue  # carried over a reload: its state never stopped
            restore_rule(
                rule,
                entries,
                now_ms,
                round(self.cfg.outage_tolerance * 1000),
                round(self.cfg.for_grace_period * 1000),
            )

    async def iterate(self, g: Group, t: int) -> None:
        """One evaluation of ``g`` at ``t``: rules, metrics, for-state file, notifications."""
        start = self.monotonic()
        g.last_evaluation_ms = round(self.clock() * 1000)
        ok = eval_group(g, self.store, t, self.clock)
        g.evaluation_s = self.monotonic() - start
        duration = self._duration.labels(g.key)
        for rule in g.rules:
            duration.observe(rule.evaluation_ms / 1000)
        if g.failed:
            self._failures.labels(g.key).inc(len(g.failed))
        self._count_alerts()
        if ok and all(r.restored for r in g.alerting()):
            self.for_state.update(g.key, t, ok, g.failed)
            await self.for_state.save()
        resend = round(self.cfg.resend_delay * 1000)
        due = [
            to_model_alert(a, rule.spec.expr, self.cfg.external_labels, self.external_url)
            for rule in ok
            for a in rule.to_send(t, resend, g.interval_ms)
        ]
        if not due:
            return
        try:
            await self.send(due)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed hand-off must not stop the rules
            log.error("rules.send_failed", group=g.key, alerts=len(due), exc_info=exc)

    def _count_alerts(self) -> None:
        counts: dict[tuple[str, str], int] = {}
        for g in self.groups:
            for rule in g.alerting():
                for state in ("pending", "firing"):
                    counts.setdefault((rule.name, state), 0)
                for a in rule.active_alerts():  # pending or firing, never inactive
                    counts[(rule.name, str(a.state))] += 1
        for (name, state), n in counts.items():
            self._alerts.labels(name, state).set(n)
