"""Wiring of the action path: journal, breaker, actuator, dispatcher, receiver, API.

The supervisor builds one ``ActionPath`` from the config, serves it over HTTP
(``web.actions_api.path_routes``), awaits ``start()`` (journal replay) before it
listens, runs ``run(stop)`` in its task group (the automatic-reset timer), and awaits
``close()`` at shutdown after the server stopped accepting requests.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from prometheus_client import CollectorRegistry

from sidecar.actions.action import new_action_id
from sidecar.actions.actuator import Actuator
from sidecar.actions.breaker import Breaker, ConditionView
from sidecar.actions.dispatch import Dispatcher
from sidecar.actions.journal import Journal
from sidecar.actions.receiver import Receiver
from sidecar.actions.routing import Router
from sidecar.core.config import Config
from sidecar.core.loops import Sleep

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
