"""The ``fleet`` config section: forwarding alerts to their owner, and the fleet budget.

Part of the config's sections (``config`` holds the whole ``Config``); see docs/fleet.md.
Forwarding is off while ``fleet.forward.allow`` is empty; the budget is off while
``fleet.prometheus_url`` is unset.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from msgspec import Meta, field

from sidecar.core.config_fields import (
    ConfigModel,
    PositiveDuration,
    RetryConfig,
    Url,
    label_name,
)

__all__ = ["FleetConfig", "ForwardConfig"]

_Fraction = Annotated[float, Meta(gt=0, le=1)]


class ForwardConfig(ConfigModel, frozen=True):
    """Where an alert about another sidecar may be forwarded."""

    allow: list[str] = field(default_factory=list)
    """CIDRs an owner's address must be in (the pod network, e.g. 10.0.0.0/8); empty by
    default: forwarding is off and an alert about another pod is dropped, counted as
    foreign. A label value decides the address, so only these networks."""
    port: Annotated[int, Meta(ge=1, le=65535)] = 9120
    """The sidecars' port: an owner address on any other port is refused, so that a
    forged label cannot aim the token at another service in the network."""
    label: str = "instance"
    """The alert label naming the owning sidecar as host:port: Prometheus's instance
    target label is the address it scraped the sidecar's /metrics at."""
    instance: str | None = None
    """This sidecar's own value of that label (e.g. ${POD_IP}:9120); none by default:
    only rules.external_labels tell this pod's alerts from the others'."""
    timeout: PositiveDuration = PositiveDuration(2.0)
    """One forward; the owner answers once it journaled, in milliseconds."""
    retry: RetryConfig = field(
        default_factory=lambda: RetryConfig.validate(
            {"attempts": 3, "initial_backoff": "100ms", "max_backoff": "1s", "max_elapsed": "5s"}
        )
    )
    """Rides out an owner's restart, within Alertmanager's webhook timeout; past it the
    delivery is answered 502 and Alertmanager retries it."""

    def __post_init__(self) -> None:
        for cidr in self.allow:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(
                    f"fleet.forward.allow: expected a network such as 10.0.0.0/8 (no host "
                    f"bits set), got {cidr!r}: {exc}"
                ) from None
        label_name(self.label, "fleet.forward.label")


class FleetConfig(ConfigModel, frozen=True):
    """The sidecars of one workload together: alerts reach their owner; breaks are budgeted."""

    forward: ForwardConfig = field(default_factory=ForwardConfig)
    """An alert delivered to the wrong sidecar (one webhook to a Service) is forwarded to
    the sidecar it is about."""
    prometheus_url: Url | None = None
    """The Prometheus that scrapes every sidecar of the workload, asked before each
    automatic break; none by default: no budget, each sidecar breaks on its own."""
    workload: dict[str, str] = field(default_factory=dict)
    """Target labels selecting this workload's sidecars in Prometheus (e.g. namespace and
    app); required with prometheus_url, or every sidecar Prometheus scrapes would share
    one budget."""
    max_open_fraction: _Fraction = 0.1
    """Share of the workload's sidecars whose circuit may be open at once, always at least
    one: Envoy's max_ejection_percent default."""
    panic_fraction: _Fraction = 0.5
    """Past this share of the workload looking sick the cause is shared: automatic breaks
    stop for the workload (Envoy's 50% panic threshold)."""
    settle: PositiveDuration = PositiveDuration(30.0)
    """A sidecar that wants a break says so on /metrics and waits this long before it
    ranks the wants: two Prometheus scrape intervals, so that every sidecar wanting a
    break at the same moment sees the others."""
    query_timeout: PositiveDuration = PositiveDuration(2.0)
    """The one instant query per decision: a break must not wait on it."""
    on_query_failure: Literal["allow", "refuse"] = "allow"
    """When Prometheus cannot answer: allow, as without a budget, because a monitoring
    outage must not take the protection away; counted and logged."""

    def __post_init__(self) -> None:
        for name in self.workload:
            label_name(name, "fleet.workload")
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
