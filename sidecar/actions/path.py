"""Wiring of the action path: journal, breaker, actuator, dispatcher, receiver, API.

The supervisor builds one ``ActionPath`` from the config, serves it over HTTP
(``web.actions_api.path_routes``), awaits ``start()`` (journal replay) before it
listens, runs ``run(stop)`` in its task group (the automatic-reset timer and the
reconciler's reads of the app's state endpoint), hands ``app_restarted`` to the scrape
stage as its restart hook, and awaits ``close()`` at shutdown after the server stopped
accepting requests.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp
from prometheus_client import CollectorRegistry

from sidecar.actions.action import new_action_id
from sidecar.actions.actuator import Actuator
from sidecar.actions.breaker import Breaker, ConditionView
from sidecar.actions.dispatch import Dispatcher
from sidecar.actions.fleet import Budget
from sidecar.actions.forward import Forwarder
from sidecar.actions.journal import Journal
from sidecar.actions.receiver import Receiver
from sidecar.actions.reconcile import Reconciler
from sidecar.actions.routing import Router
from sidecar.core.config import Config
from sidecar.core.loops import Sleep, wait_any
from sidecar.core.model import Alert
from sidecar.core.outbound import Outbound

__all__ = ["ActionPath", "build_action_path", "build_router"]


@dataclass(slots=True)
class ActionPath:
    """The action path's objects, wired; see the module docstring for the life cycle."""

    cfg: Config
    journal: Journal
    breaker: Breaker
    actuator: Actuator
    dispatcher: Dispatcher
    receiver: Receiver

    def reconfigure(self, cfg: Config, router: Router) -> None:
        """Apply a reloaded config: routes, cooldowns and this pod's identity (``router``,
        from ``build_router(cfg)``), call timeouts and retries, dedupe and journal bounds,
        the reconciler's pacing and the breaker's open times. State is kept: the breaker's
        circuit, the journal, the dedupe memory and the intent. The fleet budget and the
        forwarder keep their start config (``fleet.*`` needs a restart)."""
        self.cfg = cfg
        self.breaker.cfg = cfg.breaker
        self.actuator.reconfigure(cfg.actions)
        self.dispatcher.reconfigure(cfg.actions, router)
        self.reconciler.reconfigure(cfg.actions.reconcile)

    async def start(self) -> None:
        """Restore the breaker and memory from the journal and resume unfinished calls."""
        await self.dispatcher.restore()

    @property
    def reconciler(self) -> Reconciler:
        """Keeps the app's circuit at the breaker's desired state."""
        return self.dispatcher.reconciler

    def app_restarted(self, reason: str) -> None:
        """The scrape stage's hook: the app restarted (``reason`` says how it showed)."""
        self.reconciler.app_restarted(reason)

    async def run(self, stop: asyncio.Event) -> None:
        """Re-check the automatic reset every ``breaker.check_interval``, and the app's
        state endpoint every ``actions.reconcile.interval``, until ``stop``."""
        await wait_any(
            self.dispatcher.run(stop, self.cfg.breaker.check_interval),
            self.reconciler.run(stop),
        )

    async def close(self) -> None:
        """Let running calls finish within ``actions.drain_timeout``, then close the journal."""
        # A circuit call waiting out its backoff is not started again: the journal keeps it.
        self.reconciler.close()
        await self.dispatcher.drain(self.cfg.actions.drain_timeout)
        await self.journal.close()


def build_action_path(
    cfg: Config,
    *,
    session: aiohttp.ClientSession,
    registry: CollectorRegistry,
    view: ConditionView,
    clock: Callable[[], float] = time.time,
    sleep: Sleep = asyncio.sleep,
    random: Callable[[], float] = _random.random,
    new_id: Callable[[], str] = new_action_id,
    outbound: Outbound | None = None,
    tag: Callable[[Sequence[Alert]], list[Alert]] | None = None,
    token: Callable[[], str | None] | None = None,
) -> ActionPath:
    """Build the action path on the process's one ``ClientSession`` and registry.

    ``token`` is the bearer token forwards carry, asked at each forward (the server's,
    so that a rotated token file applies to both); None: ``cfg.token``, fixed.
    """
    journal = Journal(cfg.state_dir, registry)
    breaker = Breaker(cfg.breaker, view, registry, random=random)
    actuator = Actuator(
        cfg.app,
        cfg.actions,
        session,
        registry,
        dry_run=cfg.breaker.dry_run,
        sleep=sleep,
        outbound=outbound,
    )
    budget = (
        None
        if cfg.fleet.prometheus_url is None
        else Budget(cfg.fleet, session, registry, clock=clock)
    )
    dispatcher = Dispatcher(
        cfg.actions,
        journal,
        breaker,
        actuator,
        registry,
        clock=clock,
        sleep=sleep,
        new_id=new_id,
        budget=budget,
        router=build_router(cfg),
    )
    forward = cfg.fleet.forward
    fixed = cfg.token.get_secret_value() if cfg.token else None
    forwarder = Forwarder(
        forward,
        session,
        registry,
        token=token if token is not None else lambda: fixed,
        identity=forward.instance
        or ",".join(f"{k}={v}" for k, v in sorted(_identity(cfg).items())),
        sleep=sleep,
    )
    receiver = Receiver(dispatcher, registry, tag=tag, forwarder=forwarder)
    return ActionPath(cfg, journal, breaker, actuator, dispatcher, receiver)


def _identity(cfg: Config) -> dict[str, str]:
    # This pod's alerts carry its external labels, and its own address in the owner label.
    identity = dict(cfg.rules.external_labels)
    if cfg.fleet.forward.instance is not None:
        identity[cfg.fleet.forward.label] = cfg.fleet.forward.instance
    return identity


def build_router(cfg: Config) -> Router:
    """The action router for ``cfg``, at start and at each reload: routes and cooldowns
    (``actions``), and which alerts are this pod's (``rules.external_labels``, and
    ``fleet.forward.instance`` in ``fleet.forward.label``)."""
    return Router(cfg.actions, identity=_identity(cfg))
