"""The evidence stage: captures on alerts and on demand, and keeps the healthy baseline.

``tag`` sees every alert the embedded engine sends (the supervisor wraps the notifier's
delivery) and this pod's alerts from Alertmanager (the receiver calls it): a firing alert
that asks for evidence (``evidence.alertnames``, the label ``evidence: "true"``, or a
route of ``actions.routes`` with ``evidence: true``, through ``asks``) starts a
capture, or joins the one pending or running, or, within its rule's ``cooldown``, points
at the bundle already taken; each such alert leaves with the annotations ``evidence_id``
and ``evidence_url``, so that Alertmanager, the app's action call and the logs name the
bundle. ``capture`` is ``POST /v1/evidence``.

Captures never run concurrently: ``run`` takes one at a time, and requests that arrive
meanwhile join it (a capture is a picture of the whole app, whoever asked). A capture is
skipped, and counted, while the scrape signal says the app is struggling. An app that
serves no pprof gives a bundle that says "not available" and a counted failure, at most
once per cooldown: never a loop. The baseline is taken after ``warmup`` and refreshed
every ``baseline_interval`` while no alert that asks for evidence has fired for as long.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from prometheus_client import CollectorRegistry

from sidecar.core.config import EvidenceConfig
from sidecar.core.durable import in_thread
from sidecar.core.errors import EvidenceError
from sidecar.core.loops import Sleep, wait_any
from sidecar.core.model import Alert
from sidecar.core.outbound import Outbound
from sidecar.core.times import iso, now_ms
from sidecar.evidence import bundles as _bundles
from sidecar.evidence import report
from sidecar.evidence.metrics import EvidenceMetrics
from sidecar.evidence.pprof import Baseline, Pprof

__all__ = ["EVIDENCE_LABEL", "Evidence", "EvidenceDisabled"]

log = structlog.get_logger(__name__)

EVIDENCE_LABEL = "evidence"
"""An alert with ``evidence: "true"`` asks for a capture whatever its name."""


class EvidenceDisabled(EvidenceError):
    """``evidence.enabled`` is false: nothing is captured."""

    def __init__(self, message: str) -> None:
        super().__init__("disabled", message)


@dataclass(slots=True)
class _Request:
    id: str
    trigger: str
    alerts: list[Alert] = field(default_factory=list)
    rules: set[str] = field(default_factory=set)
    done: asyncio.Future[dict[str, Any]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Evidence:
    """Captures evidence bundles from the app's pprof; see the module docstring."""

    def __init__(
        self,
        cfg: EvidenceConfig,
        *,
        state_dir: Path,
        session: aiohttp.ClientSession,
        registry: CollectorRegistry,
        vars_url: str | None = None,
        outbound: Outbound | None = None,
        struggling: Callable[[], bool] = lambda: False,
        asks: Callable[[Mapping[str, str]], bool] = lambda labels: False,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.cfg = cfg
        self.bundles = _bundles.Bundles(
            state_dir / "evidence", max_bundles=cfg.max_bundles, max_bytes=int(cfg.max_bytes)
        )
        self._vars_url = vars_url
        self._outbound = outbound
        self._struggling = struggling
        self._asks = asks
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._current: _Request | None = None
        self._last: dict[str, tuple[float, str]] = {}
        """Per rule: when its last capture finished (monotonic) and the bundle's id."""
        self._baseline: Baseline | None = None
        self._baseline_at: float | None = None
        self._leak_seen: float | None = None
        self._started = monotonic()
        self._wake = asyncio.Event()
        self.running = False
        """True while a capture or the baseline fetches from the app (``GET /v1/evidence``)."""
        self._m = EvidenceMetrics(registry)
        self._pprof = Pprof(cfg, session, self._m)

    @property
    def pending(self) -> bool:
        """Whether a capture is asked for or under way (its bundle not stored and counted)."""
        return self._current is not None

    # -- triggers ------------------------------------------------------------------

    def wants(self, alert: Alert) -> bool:
        """Whether a firing ``alert`` asks for evidence."""
        return alert.status == "firing" and (
            alert.labels.get(EVIDENCE_LABEL) == "true"
            or alert.labels.get("alertname", "") in self.cfg.alertnames
            or self._asks(alert.labels)
        )

    def url(self, bundle: str) -> str:
        """The link to a bundle, on ``evidence.external_url`` when set."""
        return f"{self.cfg.external_url or ''}/v1/evidence/{bundle}"

    def tag(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Start or join a capture for each alert that asks; return them annotated."""
        if not self.cfg.enabled:
            return list(alerts)
        out = []
        for alert in alerts:
            bundle = self._request_for(alert) if self.wants(alert) else None
            if bundle is None:
                out.append(alert)
                continue
            notes = {**alert.annotations, "evidence_id": bundle, "evidence_url": self.url(bundle)}
            out.append(replace(alert, annotations=notes))
        return out

    def _request_for(self, alert: Alert) -> str | None:
        rule = alert.labels.get("alertname", alert.fingerprint)
        now = self._monotonic()
        self._leak_seen = now
        if self._current is not None:
            if rule not in self._current.rules:
                self._join(self._current, alert, rule)
            return self._current.id
        last = self._last.get(rule)
        if last is not None and now - last[0] < self.cfg.cooldown:
            self._m.skipped.labels("cooldown").inc()
            return last[1]
        if self._struggling():
            self._m.skipped.labels("app_struggling").inc()
            log.warning("evidence.skipped", reason="app_struggling", alertname=rule)
            return None
        request = _Request(_bundles.new_id(self._clock()), "alert")
        self._join(request, alert, rule)
        self._current = request
        self._wake.set()
        log.info("evidence.requested", evidence_id=request.id, alertname=rule)
        return request.id

    @staticmethod
    def _join(request: _Request, alert: Alert, rule: str) -> None:
        request.rules.add(rule)
        request.alerts.append(alert)

    async def capture(self, reason: str) -> dict[str, Any]:
        """Capture now (or join the capture under way) and return the bundle's meta."""
        if not self.cfg.enabled:
            raise EvidenceDisabled("evidence.enabled is false: nothing is captured")
        if self._current is None:
            self._current = _Request(_bundles.new_id(self._clock()), "manual")
            self._wake.set()
            log.info("evidence.requested", evidence_id=self._current.id, reason=reason)
        return await asyncio.shield(self._current.done)

    # -- the loop ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Take requested captures one at a time and keep the baseline, until ``stop``."""
        if not self.cfg.enabled:
            await stop.wait()
            return
        await in_thread(self._load_baseline)
        while not stop.is_set():
            self._wake.clear()
            request = self._current
            if request is not None:
                await wait_any(self._run(request), stop.wait())
                continue
            wait = self._baseline_wait()
            if wait <= 0:
                await wait_any(self._take_baseline(), stop.wait())
                continue
            await wait_any(self._sleep(wait), self._wake.wait(), stop.wait())
        if self._current is not None:
            self._fail(self._current, EvidenceError("stopping", "the sidecar is stopping"))

    def _baseline_wait(self) -> float:
        now = self._monotonic()
        due = self._started + self.cfg.warmup
        if self._baseline_at is not None:
            due = max(due, self._baseline_at + self.cfg.baseline_interval)
        if self._leak_seen is not None:
            due = max(due, self._leak_seen + self.cfg.baseline_interval)
        return due - now

    async def _run(self, request: _Request) -> None:
        try:
            meta = await self._capture(request)
        except asyncio.CancelledError:
            self._fail(request, EvidenceError("stopping", "the sidecar is stopping"))
            raise
        except EvidenceError as exc:
            self._fail(request, exc)
            meta = None
        finally:
            self._current = None
            self.running = False
        # A failed write starts the cooldown too: a full disk must not cost the app a
        # capture on every re-send.
        done = self._monotonic()
        for rule in request.rules:
            self._last[rule] = (done, request.id)
        if meta is not None:
            request.done.set_result(meta)

    @staticmethod
    def _fail(request: _Request, exc: EvidenceError) -> None:
        if not request.done.done():
            request.done.set_exception(exc)
            request.done.exception()  # retrieved: nobody may be waiting for it

    async def _capture(self, request: _Request) -> dict[str, Any]:
        self.running = True
        began = self._monotonic()
        started = now_ms(self._clock())
        problems: list[str] = []
        files = await self._pprof.profiles(problems)
        profiles = bool(files)
        if self._vars_url is not None:
            body = await self._pprof.fetch("vars", self._vars_url, problems, self._outbound)
            if isinstance(body, bytes):
                files["vars.json"] = body
        taken = now_ms(self._clock())
        rep = await in_thread(self._pprof.report, files, problems, self._baseline)
        status = "captured" if not problems else "partial" if profiles else "not_available"
        files["report.txt"] = report.render_text(rep).encode()
        files["report.json"] = json.dumps(rep.to_json(), indent=2).encode() + b"\n"
        meta = {
            "id": request.id,
            "started": iso(started),
            "time": iso(taken),
            "trigger": request.trigger,
            "status": status,
            "alerts": [
                {"labels": dict(a.labels), "fingerprint": a.fingerprint} for a in request.alerts
            ],
            "baseline": rep.baseline_time,
            "problems": problems,
        }
        try:
            dropped = await in_thread(self.bundles.save, request.id, files, meta)
        except OSError as exc:
            self._write_failed(request.id, exc)
            raise EvidenceError(
                "write_failed", f"cannot store evidence bundle {request.id}: {exc}"
            ) from exc
        self._m.dropped.inc(len(dropped))
        self._m.bundles.set(len(self.bundles.ids()))
        self._m.captures.labels(request.trigger).inc()
        took = self._monotonic() - began
        self._m.duration.set(took)
        top = rep.heap[0].function if rep.heap else None
        if status == "not_available":
            log.warning("evidence.not_available", evidence_id=request.id, problems=problems)
        else:
            log.info(
                "evidence.captured",
                evidence_id=request.id,
                trigger=request.trigger,
                status=status,
                alertnames=sorted(request.rules),
                top_site=top,
                seconds=round(took, 3),
                dropped=dropped,
            )
        return {**meta, "files": {n: len(d) for n, d in files.items()}}

    def _write_failed(self, bundle: str, exc: OSError) -> None:
        # A full or read-only state volume costs the evidence, never the sidecar.
        self._m.failures.labels("store", "write_failed").inc()
        log.error("evidence.write_failed", evidence_id=bundle, error=str(exc))

    # -- the baseline --------------------------------------------------------------

    async def _take_baseline(self) -> None:
        self._baseline_at = self._monotonic()
        if self._struggling():
            self._m.skipped.labels("app_struggling").inc()
            log.warning("evidence.skipped", reason="app_struggling", trigger="baseline")
            return
        self.running = True
        try:
            problems: list[str] = []
            files = await self._pprof.profiles(problems)
        finally:
            self.running = False
        heap = await in_thread(self._pprof.heap, files.get("heap.pb.gz"), problems)
        dump = self._pprof.goroutines(files.get("goroutine.txt"), problems)
        if heap is None and dump is None:
            log.warning("evidence.baseline_failed", problems=problems)
            return
        taken = iso(now_ms(self._clock()))
        try:
            dropped = await in_thread(
                self.bundles.save_baseline, files, {"time": taken, "problems": problems}
            )
        except OSError as exc:
            self._write_failed(_bundles.BASELINE, exc)
            return
        self._m.dropped.inc(len(dropped))
        self._m.bundles.set(len(self.bundles.ids()))
        self._m.captures.labels("baseline").inc()
        self._baseline = Baseline(taken, heap, dump)
        log.info("evidence.baseline_taken", time=taken, problems=problems)

    def _load_baseline(self) -> None:
        self.bundles.clean()
        self._m.bundles.set(len(self.bundles.ids()))
        meta = self.bundles.meta(_bundles.BASELINE)
        if meta is None:
            return
        problems: list[str] = []
        heap = self._pprof.heap(self.bundles.read(_bundles.BASELINE, "heap.pb.gz"), problems)
        dump = self._pprof.goroutines(
            self.bundles.read(_bundles.BASELINE, "goroutine.txt"), problems
        )
        if heap is not None or dump is not None:
            self._baseline = Baseline(str(meta.get("time", "")), heap, dump)
