"""The ``fleet`` config section: forwarding alerts to their owner, and the fleet budget.

Part of the config's sections (``config`` holds the whole ``Config``); see docs/fleet.md.
Forwarding is off while ``fleet.forward.allow`` is empty; the budget is off while
``fleet.prometheus_url`` is unset.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from sidecar.core.config_fields import (
    ConfigModel,
    PositiveDuration,
    RetryConfig,
    Url,
    label_name,
)

__all__ = ["FleetConfig", "ForwardConfig"]


class ForwardConfig(ConfigModel):
    """Where an alert about another sidecar may be forwarded."""

    allow: list[str] = Field(
        default_factory=list,
        description="CIDRs an owner's address must be in (the pod network, e.g. 10.0.0.0/8); "
        "empty by default: forwarding is off and an alert about another pod is dropped, "
        "counted as foreign. A label value decides the address, so only these networks.",
    )
    port: int = Field(
        9120,
        ge=1,
        le=65535,
        description="The sidecars' port: an owner address on any other port is refused, so "
        "that a forged label cannot aim the token at another service in the network.",
    )
    label: str = Field(
        "instance",
        description="The alert label naming the owning sidecar as host:port: Prometheus's "
        "instance target label is the address it scraped the sidecar's /metrics at.",
    )
    instance: str | None = Field(
        None,
        description="This sidecar's own value of that label (e.g. ${POD_IP}:9120); none by "
        "default: only rules.external_labels tell this pod's alerts from the others'.",
    )
    timeout: PositiveDuration = Field(
        2.0, description="One forward; the owner answers once it journaled, in milliseconds."
    )
    retry: RetryConfig = Field(
        default_factory=lambda: RetryConfig.model_validate(
            {"attempts": 3, "initial_backoff": "100ms", "max_backoff": "1s", "max_elapsed": "5s"}
        ),
        description="Rides out an owner's restart, within Alertmanager's webhook timeout; "
        "past it the delivery is answered 502 and Alertmanager retries it.",
    )

    @field_validator("allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(
                    f"expected a network such as 10.0.0.0/8 (no host bits set), got {cidr!r}: {exc}"
                ) from None
        return value

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        return label_name(value, "fleet.forward.label")


class FleetConfig(ConfigModel):
    """The sidecars of one workload together: alerts reach their owner; breaks are budgeted."""

    forward: ForwardConfig = Field(
        default_factory=ForwardConfig,
        description="An alert delivered to the wrong sidecar (one webhook to a Service) is "
        "forwarded to the sidecar it is about.",
    )
    prometheus_url: Url | None = Field(
        None,
        description="The Prometheus that scrapes every sidecar of the workload, asked before "
        "each automatic break; none by default: no budget, each sidecar breaks on its own.",
    )
    workload: dict[str, str] = Field(
        default_factory=dict,
        description="Target labels selecting this workload's sidecars in Prometheus (e.g. "
        "namespace and app); required with prometheus_url, or every sidecar Prometheus "
        "scrapes would share one budget.",
    )
    max_open_fraction: float = Field(
        0.1,
        gt=0,
        le=1,
        description="Share of the workload's sidecars whose circuit may be open at once, "
        "always at least one: Envoy's max_ejection_percent default.",
    )
    panic_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Past this share of the workload looking sick the cause is shared: "
        "automatic breaks stop for the workload (Envoy's 50% panic threshold).",
    )
    settle: PositiveDuration = Field(
        30.0,
        description="A sidecar that wants a break says so on /metrics and waits this long "
        "before it ranks the wants: two Prometheus scrape intervals, so that every sidecar "
        "wanting a break at the same moment sees the others.",
    )
    query_timeout: PositiveDuration = Field(
        2.0, description="The one instant query per decision: a break must not wait on it."
    )
    on_query_failure: Literal["allow", "refuse"] = Field(
        "allow",
        description="When Prometheus cannot answer: allow, as without a budget, because a "
        "monitoring outage must not take the protection away; counted and logged.",
    )

    @field_validator("workload")
    @classmethod
    def _workload(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            label_name(name, "fleet.workload")
        return value

    @model_validator(mode="after")
    def _check(self) -> FleetConfig:
        if self.prometheus_url is not None and not self.workload:
            raise ValueError(
                f"fleet.workload: required with fleet.prometheus_url ({self.prometheus_url}), "
                "got none: every sidecar Prometheus scrapes would share one budget"
            )
        if self.max_open_fraction > self.panic_fraction:
            raise ValueError(
                f"fleet.max_open_fraction: must not exceed fleet.panic_fraction "
                f"({self.panic_fraction}), got {self.max_open_fraction}"
            )
        return self
