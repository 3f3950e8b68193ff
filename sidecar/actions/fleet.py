"""The fleet budget: how many of a workload's pods may be broken at once, asked of Prometheus.

When much of a workload looks sick at once the cause is shared (a bad release, a slow
database), and breaking every pod is itself the outage. So, as Envoy's outlier detection
caps ejections (``max_ejection_percent``) and stops ejecting in panic mode, an automatic
break first asks Prometheus, which scrapes every sidecar of the workload
(``fleet.workload`` selects them), one bounded instant query (``query``):

- ``total``: the workload's sidecars (``up``, so that a pod too sick to be scraped counts);
- ``open``: those whose circuit is open or being opened (desired state open);
- ``claims``: those wanting a break (or holding one they were granted), each with the
  time it started wanting it;
- ``sick``: those open or wanting a break.

``decide`` then says, for this sidecar (whose circuit is closed and which wants a break):

1. A want is first published on ``/metrics`` (``leak_sidecar_fleet_break_wanted``, the
   time it started) and the decision waits ``fleet.settle``, two scrape intervals, so
   that sidecars wanting a break at the same moment all see each other before any acts.
2. Past ``fleet.panic_fraction`` of the workload sick: panic, no automatic break
   anywhere in the workload (``leak_sidecar_fleet_panic`` is 1, ``fleet.panic`` logged,
   a line on the status page) until enough of it recovers.
3. At most ``max(1, floor(max_open_fraction * total))`` open: a sidecar may break when
   the open ones and those that want it longer (ties broken by sidecar id) leave a slot,
   the same order for every sidecar. A granted want stays published while the circuit
   is open, so that no sidecar sees a slot between the want going and Prometheus
   scraping the open state.
4. A failed query applies ``fleet.on_query_failure`` (allow by default), counted.

A refused break is not forgotten: the dispatcher examines it again every
``breaker.check_interval`` while its alert fires, and it proceeds once budget frees; it
is journaled, so that a restarted sidecar examines it again too.
Manual breaks and cache flushes never ask.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
import msgspec
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from sidecar.core.config_fleet import FleetConfig
from sidecar.core.durations import format_duration
from sidecar.core.errors import clip

__all__ = ["Budget", "Census", "Verdict", "census_query"]

log = structlog.get_logger(__name__)

_Q = "leak_sidecar_q"
"""The label that tells the parts of the one query's answer apart."""
_WANTED = "leak_sidecar_fleet_break_wanted"
_ID = "sidecar_id"
_MAX_ANSWER = 1024 * 1024
"""Bytes of a query answer read at most: one series per sidecar of one workload."""


def _selector(workload: Mapping[str, str], name: str) -> str:
    # Values are quoted as PromQL strings: a backslash, a quote or a newline in a label
    # value cannot end the string.
    quoted = ((k, msgspec.json.encode(v).decode()) for k, v in sorted(workload.items()))
    matchers = ",".join(f"{k}={v}" for k, v in quoted)
    return f"{name}{{{matchers}}}"


def census_query(workload: Mapping[str, str]) -> str:
    """The one instant query of a decision, for the sidecars ``workload`` selects."""
    up = _selector(workload, "up")
    wanted = _selector(workload, _WANTED) + " > 0"
    desired = _selector(workload, "leak_sidecar_circuit_desired_state") + " == 1"
    parts = {
        "total": f"count({up})",
        "sick": f"count(max by (instance) ({wanted} or {desired}))",
        "open": desired,
        "claim": wanted,
    }
    return " or ".join(f'label_replace({e}, "{_Q}", "{k}", "", "")' for k, e in parts.items())


@dataclass(frozen=True, slots=True)
class Census:
    """What Prometheus says of the workload's sidecars."""

    total: int
    sick: int
    open: frozenset[str]
    """The ``instance`` of each sidecar whose circuit is open or opening."""
    claims: tuple[tuple[float, str, str], ...]
    """(since, sidecar id, instance) of each sidecar wanting a break, oldest first."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """May this sidecar break now, and why (or why not)."""

    allowed: bool
    why: str
    outcome: str
    """The counter's label: allowed, refused, waiting, panic, fallback_allowed, fallback_refused."""


class _Sample(msgspec.Struct, frozen=True):
    metric: dict[str, str]
    value: tuple[float, str]


class _Data(msgspec.Struct, frozen=True):
    resultType: str  # noqa: N815 -- Prometheus's field name
    result: list[_Sample]


class _Answer(msgspec.Struct, frozen=True):
    status: str
    data: _Data | None = None
    error: str = ""


class _QueryFailed(Exception):
    """Prometheus did not give a usable answer."""


def parse_census(body: bytes) -> Census:
    """A census from a query answer; ``_QueryFailed`` saying what was wrong."""
    try:
        answer = msgspec.json.decode(body, type=_Answer)
    except msgspec.DecodeError as exc:
        raise _QueryFailed(f"expected Prometheus's query answer: {exc}") from exc
    if answer.status != "success" or answer.data is None:
        raise _QueryFailed(f"query failed: {clip(answer.error, 200)}")
    if answer.data.resultType != "vector":
        raise _QueryFailed(f"expected a vector, got {answer.data.resultType!r}")
    counts = {"total": 0, "sick": 0}
    claims, opened = [], set()
    for s in answer.data.result:
        kind = s.metric.get(_Q)
        try:
            value = float(s.value[1])
        except ValueError:
            raise _QueryFailed(f"expected a number, got {clip(s.value[1], 40)!r}") from None
        if not math.isfinite(value):
            raise _QueryFailed(f"expected a finite number, got {s.value[1]!r}")
        instance = s.metric.get("instance", "")
        if kind in counts:
            counts[kind] = int(value)
        elif kind == "open":
            opened.add(instance)
        elif kind == "claim" and _ID in s.metric:
            claims.append((value, s.metric[_ID], instance))
    return Census(counts["total"], counts["sick"], frozenset(opened), tuple(sorted(claims)))


class Budget:
    """Decides whether this sidecar may break now; publishes its want and the panic."""

    def __init__(
        self,
        cfg: FleetConfig,
        session: aiohttp.ClientSession,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.time,
        sidecar_id: str | None = None,
    ) -> None:
        assert cfg.prometheus_url is not None  # built only when the budget is on
        self._cfg = cfg
        self._session = session
        self._clock = clock
        self._url = f"{cfg.prometheus_url}/api/v1/query"
        self._query = census_query(cfg.workload)
        self.id = sidecar_id or uuid.uuid4().hex[:16]
        self._lock = asyncio.Lock()
        self.wanted_since: float | None = None
        self.panic = False
        self.last: str = ""
        """The last verdict's reason, for the status page."""
        self._wanted = Gauge(
            _WANTED,
            "Since when (Unix seconds) this sidecar wants an automatic break that the fleet "
            "budget has not granted yet; 0 when it wants none. The other sidecars of the "
            "workload read it in Prometheus.",
            [_ID],
            registry=registry,
        ).labels(self.id)
        self._wanted.set(0)
        self._panic = Gauge(
            "leak_sidecar_fleet_panic",
            "1 while automatic breaks are suspended because more than fleet.panic_fraction "
            "of the workload looks sick.",
            registry=registry,
        )
        self._decisions = Counter(
            "leak_sidecar_fleet_budget_decisions_total",
            "Automatic breaks examined against the fleet budget, by outcome.",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("allowed", "refused", "waiting", "panic"):
            self._decisions.labels(outcome)
        self._failures = Counter(
            "leak_sidecar_fleet_budget_query_failures_total",
            "Budget queries to Prometheus that failed; fleet.on_query_failure decided.",
            registry=registry,
        )

    def release(self) -> None:
        """This sidecar wants no break any more: its circuit closed, or the alerts resolved."""
        if self.wanted_since is not None:
            self.wanted_since = None
            self._wanted.set(0)
        # Only a sidecar that wants a break asks; one that wants none cannot know.
        self.panic = False
        self._panic.set(0)

    async def decide(self) -> Verdict:
        """Whether this sidecar, closed and wanting a break, may break now."""
        async with self._lock:
            verdict = await self._decide()
        self._decisions.labels(verdict.outcome).inc()
        if verdict.why != self.last:
            self.last = verdict.why
            if verdict.outcome == "waiting":
                log.info("fleet.budget", outcome=verdict.outcome, why=verdict.why)
            else:
                log.warning("fleet.budget", outcome=verdict.outcome, why=verdict.why)
        return verdict

    async def _decide(self) -> Verdict:
        now = self._clock()
        if self.wanted_since is None:
            self.wanted_since = now
            self._wanted.set(now)
        if now - self.wanted_since < self._cfg.settle:
            # One wording while it waits: the log says it once, not every re-examination.
            settle = format_duration(self._cfg.settle)
            return Verdict(False, f"waiting {settle} for the fleet to see this want", "waiting")
        try:
            census = await self._ask()
        except (_QueryFailed, aiohttp.ClientError, TimeoutError) as exc:
            return self._fallback(exc)
        self._set_panic(census)
        if self.panic:
            return Verdict(
                False,
                f"panic: {census.sick} of {census.total} sidecars of the workload look sick "
                f"(more than {self._cfg.panic_fraction:g}); automatic breaks suspended",
                "panic",
            )
        allowed = max(1, math.floor(self._cfg.max_open_fraction * census.total))
        budget = f"{len(census.open)} of {census.total} open, {allowed} allowed"
        if len(census.open) >= allowed:
            return Verdict(False, f"budget spent: {budget}", "refused")
        mine = [(since, sid) for since, sid, _ in census.claims if sid == self.id]
        if not mine:
            return Verdict(False, "waiting for Prometheus to see this want", "waiting")
        older = {inst for since, sid, inst in census.claims if (since, sid) < mine[0]}
        if len(census.open | older) >= allowed:
            return Verdict(
                False, f"queued: {len(older)} older want(s) before this one, {budget}", "refused"
            )
        return Verdict(True, f"within budget: {budget}", "allowed")

    async def _ask(self) -> Census:
        timeout = aiohttp.ClientTimeout(total=self._cfg.query_timeout)
        params = {"query": self._query}
        async with self._session.get(self._url, params=params, timeout=timeout) as resp:
            body = await resp.content.read(_MAX_ANSWER + 1)
            if len(body) > _MAX_ANSWER:
                raise _QueryFailed(f"answer larger than {_MAX_ANSWER} bytes")
            if resp.status != 200:
                raise _QueryFailed(
                    f"Prometheus answered {resp.status}: {clip(body.decode(errors='replace'), 200)}"
                )
        return parse_census(body)

    def _fallback(self, exc: BaseException) -> Verdict:
        self._failures.inc()
        error = clip(str(exc) or type(exc).__name__, 300)
        allow = self._cfg.on_query_failure == "allow"
        log.warning("fleet.query_failed", url=self._url, error=error, fallback=allow)
        return Verdict(
            allow,
            f"Prometheus query failed ({error}); fleet.on_query_failure: "
            f"{self._cfg.on_query_failure}",
            "fallback_allowed" if allow else "fallback_refused",
        )

    def _set_panic(self, census: Census) -> None:
        panic = census.total > 0 and census.sick / census.total > self._cfg.panic_fraction
        if panic and not self.panic:
            log.error(
                "fleet.panic",
                sick=census.sick,
                total=census.total,
                panic_fraction=self._cfg.panic_fraction,
                meaning="a shared cause: automatic breaks suspended for the workload",
            )
        elif self.panic and not panic:
            log.warning("fleet.panic_over", sick=census.sick, total=census.total)
        self.panic = panic
        self._panic.set(1 if panic else 0)

    def status(self) -> str:
        """One line for the status page."""
        if self.panic:
            return f"PANIC, automatic breaks suspended: {self.last}"
        if self.wanted_since is not None:
            return f"break wanted: {self.last}"
        return f"on; at most {self._cfg.max_open_fraction:g} of the workload open at once"
