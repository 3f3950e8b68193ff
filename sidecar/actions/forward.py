"""Forwarding: an alert delivered to the wrong sidecar goes on to the sidecar it is about.

One Alertmanager webhook to a Service lands on any pod's sidecar. The receiver acts on
this pod's alerts and hands the others (routed ``foreign``) here: the owner's address is
the value of ``fleet.forward.label`` (Prometheus's ``instance``: the address it scraped
the owner's ``/metrics`` at), and the alerts are posted to the owner's ``/alerts`` as a
webhook notification of their own, with the shared token (asked at each forward: a
rotated token file applies to the forwards as to the server).

A label value is an attacker's choice, so the address must be an IP literal (no name
to resolve) inside ``fleet.forward.allow`` and on the sidecars' port; anything else is
refused. A forwarded request carries ``HOP_HEADER``, and an alert that came with it is
never forwarded again: two sidecars that disagree about who owns an alert cannot pass
it back and forth. The receiver answers the original delivery only after every owner
accepted its alerts (``ForwardFailed`` otherwise, answered 502), so that Alertmanager
retries; the owner's dedupe makes the retry harmless.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp
import orjson
import structlog
from prometheus_client import CollectorRegistry, Counter
from tenacity import RetryCallState

from sidecar.actions.action import alert_json, alert_names
from sidecar.core.config_fleet import ForwardConfig
from sidecar.core.errors import SidecarError, clip
from sidecar.core.loops import Sleep
from sidecar.core.model import Alert
from sidecar.core.retry import retrying

__all__ = ["HOP_HEADER", "ForwardFailed", "Forwarder"]

log = structlog.get_logger(__name__)

HOP_HEADER = "X-Leak-Sidecar-Forwarded"
"""Set on a forwarded delivery (to the forwarding sidecar's own identity, for logs)."""
_RECEIVER = "leak-sidecar-forward"
"""The ``receiver`` of a forwarded notification, so that the owner's logs tell it apart."""


class ForwardFailed(SidecarError):
    """An owner did not accept its alerts: the delivery must be retried."""

    def __init__(self, failures: Sequence[str]) -> None:
        self.failures = tuple(failures)
        super().__init__("; ".join(self.failures))


class _Transient(Exception):
    """A 5xx or 429 from the owner, or no answer: worth another try."""


@dataclass(frozen=True, slots=True)
class _Owner:
    address: str
    alerts: list[Alert]


class Forwarder:
    """Posts foreign alerts to their owner's ``/alerts``; counts and logs every outcome."""

    def __init__(
        self,
        cfg: ForwardConfig,
        session: aiohttp.ClientSession,
        registry: CollectorRegistry,
        *,
        token: Callable[[], str | None],
        identity: str,
        sleep: Sleep | None = None,
    ) -> None:
        self._cfg = cfg
        self._session = session
        self._token = token
        self._identity = identity
        self._sleep = sleep
        self._allow = tuple(ipaddress.ip_network(c) for c in cfg.allow)
        self._outcomes = Counter(
            "leak_sidecar_forwarded_alerts_total",
            "Alerts about another sidecar, by outcome: forwarded to their owner, refused "
            "(owner address not allowed, or already forwarded once), failed (owner did not "
            "accept them).",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("forwarded", "refused", "failed"):
            self._outcomes.labels(outcome)
        self._retries = Counter(
            "leak_sidecar_forward_retries_total",
            "Forwards to an owner sent again after a transient failure.",
            registry=registry,
        )

    @property
    def enabled(self) -> bool:
        """Whether any owner address is allowed at all (``fleet.forward.allow``)."""
        return bool(self._allow)

    def owner(self, alert: Alert) -> str | None:
        """The owner's ``host:port`` when allowed, else None (the reason is logged)."""
        value = alert.labels.get(self._cfg.label)
        problem = self._problem(value)
        if problem is None:
            return value
        self._refuse(alert, problem, value or "")
        return None

    def _problem(self, value: str | None) -> str | None:
        if not value:
            return f"no {self._cfg.label} label to find its owner by"
        host, sep, port = value.rpartition(":")
        try:
            ip = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
        except ValueError:
            return f"expected an IP address and port in {self._cfg.label}"
        if not sep or port != str(self._cfg.port):
            return f"expected the sidecar port {self._cfg.port} in {self._cfg.label}"
        if not any(ip in net for net in self._allow):
            return "owner address outside fleet.forward.allow"
        return None

    def _refuse(self, alert: Alert, why: str, value: str) -> None:
        self._outcomes.labels("refused").inc()
        log.warning(
            "forward.refused",
            alertname=clip(alert.labels.get("alertname", ""), 100),
            fingerprint=alert.fingerprint,
            owner=clip(value, 100),
            why=why,
        )

    async def forward(self, alerts: Sequence[Alert], *, hop: str | None) -> int:
        """Forward each alert to its owner; the number forwarded.

        ``hop`` is the ``HOP_HEADER`` of the delivery they came in (None: straight from
        Alertmanager): a forwarded alert is refused, never forwarded again. Raises
        ``ForwardFailed`` when an owner did not accept its alerts.
        """
        owners: dict[str, _Owner] = {}
        for alert in alerts:
            if hop is not None:
                self._refuse(alert, f"already forwarded once (by {clip(hop, 100)})", "")
                continue
            address = self.owner(alert)
            if address is not None:
                owners.setdefault(address, _Owner(address, [])).alerts.append(alert)
        results = await asyncio.gather(*(self._send(o) for o in owners.values()))
        failures = [r for r in results if r is not None]
        if failures:
            raise ForwardFailed(failures)
        return sum(len(o.alerts) for o in owners.values())

    async def _send(self, owner: _Owner) -> str | None:
        url = f"http://{owner.address}/alerts"
        body = orjson.dumps(
            {
                "version": "4",
                "groupKey": f"{_RECEIVER}:{owner.address}",
                "receiver": _RECEIVER,
                "status": "firing"
                if any(a.status == "firing" for a in owner.alerts)
                else "resolved",
                "truncatedAlerts": 0,
                "alerts": [alert_json(a) for a in owner.alerts],
            }
        )
        headers = {"Content-Type": "application/json", HOP_HEADER: self._identity}
        token = self._token()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async for attempt in retrying(
                self._cfg.retry,
                (_Transient, aiohttp.ClientError, TimeoutError),
                event="forward.retry_scheduled",
                on_retry=self._on_retry,
                sleep=self._sleep,
                owner=owner.address,
            ):
                with attempt:
                    await self._post(url, body, headers)
        except (_Transient, aiohttp.ClientError, TimeoutError, _Rejected) as exc:
            self._outcomes.labels("failed").inc(len(owner.alerts))
            error = clip(str(exc) or type(exc).__name__, 300)
            log.error(
                "forward.failed",
                owner=owner.address,
                alerts=len(owner.alerts),
                alertnames=alert_names(owner.alerts),
                error=error,
            )
            return f"{owner.address}: {error}"
        self._outcomes.labels("forwarded").inc(len(owner.alerts))
        log.info(
            "forward.sent",
            owner=owner.address,
            alerts=len(owner.alerts),
            alertnames=alert_names(owner.alerts),
        )
        return None

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        timeout = aiohttp.ClientTimeout(total=self._cfg.timeout)
        async with self._session.post(url, data=body, headers=headers, timeout=timeout) as resp:
            if resp.status < 300:
                return
            # Read a little only: the owner's address came from a label.
            text = clip((await resp.content.read(1024)).decode(errors="replace").strip(), 200)
            if resp.status >= 500 or resp.status == 429:
                raise _Transient(f"owner answered {resp.status}: {text}")
            raise _Rejected(f"owner answered {resp.status}: {text}")

    def _on_retry(self, _state: RetryCallState) -> None:
        self._retries.inc()


class _Rejected(Exception):
    """A 4xx from the owner (a wrong token, say): another try cannot help."""
