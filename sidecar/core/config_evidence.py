"""The ``evidence`` config section: heap and goroutine profiles when a leak alert fires.

Part of the config's sections (``config`` holds the whole ``Config``); the capture that
reads it is ``evidence.capture``.
"""

from __future__ import annotations

from pydantic import ByteSize, Field

from sidecar.core.config_fields import (
    BaseUrl,
    ConfigModel,
    Duration,
    Positive,
    PositiveDuration,
    Url,
    UrlPath,
)

__all__ = ["EvidenceConfig"]


class EvidenceConfig(ConfigModel):
    """Heap and goroutine profiles from the app's net/http/pprof when a leak alert fires."""

    enabled: bool = Field(
        True,
        description="On: an app without pprof costs one refused GET per baseline_interval, "
        "counted as not available.",
    )
    pprof_url: BaseUrl = Field(
        "http://127.0.0.1:6060",
        description="Go's customary pprof port, on its own loopback-only listener: the "
        "profiles never share the app's public port.",
    )
    heap_path: UrlPath = Field("/debug/pprof/heap", description="net/http/pprof's default.")
    goroutine_path: UrlPath = Field(
        "/debug/pprof/goroutine", description="net/http/pprof's default; read with debug=1."
    )
    allocs_path: UrlPath | None = Field(
        None,
        description="None by default: allocations since start explain churn, not retention, "
        "and double the bytes kept; /debug/pprof/allocs to add them.",
    )
    timeout: PositiveDuration = Field(
        10.0, description="One profile; writing a large heap profile takes the app seconds."
    )
    max_profile_bytes: ByteSize = Field(
        ByteSize(8 * 1024 * 1024),
        gt=0,
        description="Per file, counted while streaming (and once inflated): a real heap "
        "profile is well under 1MiB even for a large service.",
    )
    alertnames: list[str] = Field(
        default_factory=lambda: [
            "HeapFloorRising",
            "OOMPredicted",
            "OOMImminent",
            "GoroutinesGrowing",
        ],
        description="The pack's memory and goroutine rules; any other alert asks with the "
        "label evidence: 'true'.",
    )
    cooldown: Duration = Field(
        600.0, description="Per rule: one bundle per leak episode, not one per evaluation."
    )
    warmup: Duration = Field(
        300.0, description="The baseline waits this long after start: caches fill first."
    )
    baseline_interval: PositiveDuration = Field(
        3600.0, description="The baseline is refreshed this often while no leak alert fires."
    )
    external_url: Url | None = Field(
        None,
        description="The sidecar as operators reach it, prefix of the evidence link in alert "
        "annotations; none by default: the link is then a path on the sidecar.",
    )
    top: Positive = Field(10, description="Call sites per report: the leak is at the top.")
    max_bundles: Positive = Field(10, description="Bundles kept; the oldest is dropped first.")
    max_bytes: ByteSize = Field(
        ByteSize(64 * 1024 * 1024),
        gt=0,
        description="Bundles and baseline together on the state volume, oldest dropped first.",
    )
