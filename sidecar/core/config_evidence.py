"""The ``evidence`` config section: heap and goroutine profiles when a leak alert fires.

Part of the config's sections (``config`` holds the whole ``Config``); the capture that
reads it is ``evidence.capture``.
"""

from __future__ import annotations

from msgspec import field

from sidecar.core.config_fields import (
    BaseUrl,
    ByteSize,
    ConfigModel,
    Duration,
    Positive,
    PositiveDuration,
    Url,
    UrlPath,
)

__all__ = ["EvidenceConfig"]


class EvidenceConfig(ConfigModel, frozen=True):
    """Heap and goroutine profiles from the app's net/http/pprof when a leak alert fires."""

    enabled: bool = True
    """On: an app without pprof costs one refused GET per baseline_interval, counted as
    not available."""
    pprof_url: BaseUrl = BaseUrl("http://127.0.0.1:6060")
    """Go's customary pprof port, on its own loopback-only listener: the profiles never
    share the app's public port."""
    heap_path: UrlPath = UrlPath("/debug/pprof/heap")
    """net/http/pprof's default."""
    goroutine_path: UrlPath = UrlPath("/debug/pprof/goroutine")
    """net/http/pprof's default; read with debug=1."""
    allocs_path: UrlPath | None = None
    """None by default: allocations since start explain churn, not retention, and double
    the bytes kept; /debug/pprof/allocs to add them."""
    timeout: PositiveDuration = PositiveDuration(10.0)
    """One profile; writing a large heap profile takes the app seconds."""
    max_profile_bytes: ByteSize = ByteSize(8 * 1024 * 1024)
    """Per file, counted while streaming (and once inflated): a real heap profile is well
    under 1MiB even for a large service."""
    alertnames: list[str] = field(
        default_factory=lambda: [
            "HeapFloorRising",
            "OOMPredicted",
            "OOMImminent",
            "GoroutinesGrowing",
        ]
    )
    """The pack's memory and goroutine rules; any other alert asks with the label
    evidence: 'true'."""
    cooldown: Duration = Duration(600.0)
    """Per rule: one bundle per leak episode, not one per evaluation."""
    warmup: Duration = Duration(300.0)
    """The baseline waits this long after start: caches fill first."""
    baseline_interval: PositiveDuration = PositiveDuration(3600.0)
    """The baseline is refreshed this often while no leak alert fires."""
    external_url: Url | None = None
    """The sidecar as operators reach it, prefix of the evidence link in alert
    annotations; none by default: the link is then a path on the sidecar."""
    top: Positive = 10
    """Call sites per report: the leak is at the top."""
    max_bundles: Positive = 10
    """Bundles kept; the oldest is dropped first."""
    max_bytes: ByteSize = ByteSize(64 * 1024 * 1024)
    """Bundles and baseline together on the state volume, oldest dropped first."""
