"""Wiring of the action path: journal, breaker, actuator, dispatcher, receiver, API.

The supervisor builds one ``ActionPath`` from the config, adds its ``routes()`` to the
server, awaits ``start()`` (journal replay) before it listens, runs ``run(stop)`` in its
task group (the automatic-reset timer), and awaits ``close()`` at shutdown after the
server stopped accepting requests.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from sidecar import actions_api
from sidecar.actions import new_action_id
from sidecar.actuator import Actuator
from sidecar.breaker import Breaker, ConditionView
from sidecar.config import Config
from sidecar.dispatch import Dispatcher
from sidecar.journal import Journal
from sidecar.receiver import Receiver
from sidecar.retry import Sleep
from sidecar.routing import Router

__all__ = ["ActionPath", "build_action_path"]


@dataclass(frozen=True, slots=True)
class ActionPath:
    """The action path's objects, wired; see the module docstring for the life cycle."""

    cfg: Config
    journal: Journal
    breaker: Breaker
    actuator: Actuator
    dispatcher: Dispatcher
    receiver: Receiver

    def routes(self) -> list[web.RouteDef]:
        """POST /alerts and the operator API."""
        return self.receiver.routes() + actions_api.routes(
            self.dispatcher, dry_run=self.cfg.breaker.dry_run
        )

    async def start(self) -> None:
        """Restore the breaker and memory from the journal and resume unfinished calls."""
        await self.dispatcher.restore()

    async def run(self, stop: asyncio.Event) -> None:
        """Re-check the automatic reset every ``breaker.check_interval`` until ``stop``."""
        await self.dispatcher.run(stop, self.cfg.breaker.check_interval)

    async def close(self) -> None:
        """Let running calls finish within ``actions.drain_timeout``, then close the journal."""
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
) -> ActionPath:
    """Build the action path on the process's one ``ClientSession`` and registry."""
    journal = Journal(cfg.state_dir, registry)
    breaker = Breaker(cfg.breaker, view, registry, random=random)
    actuator = Actuator(
        cfg.app, cfg.actions, session, registry, dry_run=cfg.breaker.dry_run, sleep=sleep
    )
    dispatcher = Dispatcher(
        cfg.actions, journal, breaker, actuator, registry, clock=clock, new_id=new_id
    )
    router = Router(cfg.actions, identity=cfg.rules.external_labels)
    receiver = Receiver(router, dispatcher, registry)
    return ActionPath(cfg, journal, breaker, actuator, dispatcher, receiver)
