"""The app's pprof, read for one capture or the baseline: fetch the parts, decode, report.

Owns what a picture of the app is made of: the bounded GETs of the heap, goroutine and
(when configured) allocs profiles, stopping at the heap when nothing serves pprof there;
decoding the heap into call-site values and the goroutine dump into stacks; and the
growth report from a ``Baseline``. Every part that fails is counted in
``leak_sidecar_evidence_failures_total`` and described in ``problems``, which the bundle
keeps. When to take a picture, and where it is stored, is ``capture``'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from sidecar.core.config import EvidenceConfig
from sidecar.core.outbound import Outbound
from sidecar.evidence import goroutines, profile, report
from sidecar.evidence.fetch import CaptureError, get
from sidecar.evidence.metrics import EvidenceMetrics

__all__ = ["MAX_FRAMES", "Baseline", "Pprof"]

MAX_FRAMES = 8
"""Frames kept per call site: the site and its callers, enough to tell two paths apart."""


@dataclass(frozen=True, slots=True)
class Baseline:
    """The healthy picture a capture's growth is measured from."""

    time: str
    heap: profile.SiteValues | None
    goroutines: goroutines.GoroutineDump | None


class Pprof:
    """Fetches and decodes the app's pprof parts; see the module docstring."""

    def __init__(
        self, cfg: EvidenceConfig, session: aiohttp.ClientSession, metrics: EvidenceMetrics
    ) -> None:
        self.cfg = cfg
        self._session = session
        self._m = metrics

    async def fetch(
        self, part: str, url: str, problems: list[str], outbound: Outbound | None = None
    ) -> bytes | CaptureError:
        """GET one part; a failure is counted, added to ``problems`` and returned."""
        try:
            return await get(
                self._session,
                url,
                within=self.cfg.timeout,
                limit=int(self.cfg.max_profile_bytes),
                outbound=outbound,
            )
        except CaptureError as exc:
            self._m.failures.labels(part, exc.reason).inc()
            problems.append(f"{part}: {exc}")
            return exc

    async def profiles(self, problems: list[str]) -> dict[str, bytes]:
        """The profiles the app served, by bundle file name."""
        base = self.cfg.pprof_url
        files: dict[str, bytes] = {}
        heap = await self.fetch("heap", base + self.cfg.heap_path, problems)
        if isinstance(heap, CaptureError) and heap.reason == "not_available":
            # Nothing serves pprof there: asking for the other parts adds nothing.
            self._m.failures.labels("goroutine", "not_available").inc()
            problems.append("goroutine: not fetched, the heap profile was not available")
            return files
        if isinstance(heap, bytes):
            files["heap.pb.gz"] = heap
        dump = await self.fetch("goroutine", base + self.cfg.goroutine_path + "?debug=1", problems)
        if isinstance(dump, bytes):
            files["goroutine.txt"] = dump
        if self.cfg.allocs_path is not None:
            allocs = await self.fetch("allocs", base + self.cfg.allocs_path, problems)
            if isinstance(allocs, bytes):
                files["allocs.pb.gz"] = allocs
        return files

    def report(
        self, files: dict[str, bytes], problems: list[str], base: Baseline | None
    ) -> report.Report:
        """The growth report of a capture's ``files`` from ``base`` (none yet: no growth)."""
        heap = self.heap(files.get("heap.pb.gz"), problems)
        dump = self.goroutines(files.get("goroutine.txt"), problems)
        return report.build(
            heap=heap,
            heap_baseline=base.heap if base else None,
            goroutines=dump,
            goroutines_baseline=base.goroutines if base else None,
            baseline_time=base.time if base else None,
            top=self.cfg.top,
            problems=list(problems),
        )

    def heap(self, data: bytes | None, problems: list[str]) -> profile.SiteValues | None:
        """A heap profile's values per call site; None when absent or not a profile."""
        if data is None:
            return None
        try:
            decoded = profile.decode(data, limit=int(self.cfg.max_profile_bytes) * 8)
            return profile.site_values(decoded, report.HEAP_TYPES, max_frames=MAX_FRAMES)
        except profile.ProfileError as exc:
            self._m.failures.labels("heap", "invalid").inc()
            problems.append(f"heap: {exc}")
            return None

    def goroutines(
        self, data: bytes | None, problems: list[str]
    ) -> goroutines.GoroutineDump | None:
        """A ``debug=1`` goroutine dump's stacks; None when absent or not a dump."""
        if data is None:
            return None
        try:
            return goroutines.parse(data.decode("utf-8", "replace"), max_frames=MAX_FRAMES)
        except profile.ProfileError as exc:
            self._m.failures.labels("goroutine", "invalid").inc()
            problems.append(f"goroutine: {exc}")
            return None
