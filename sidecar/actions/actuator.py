"""Calls to the app: one POST per action, retried on transient failures, every outcome seen.

The URL of every call comes from config (``app.base_url`` + the action's path), never
from alert data. The JSON body names the action, the reason, who asked and the alerts;
the ``Idempotency-Key`` header is the journaled action id, the same on every attempt
and after a restart, so that the app can recognise a repeat. Connection errors,
timeouts, 429 and 5xx are ``ActionUnavailable`` and retried with exponential backoff and
full jitter, bounded in attempts and time; any other 4xx is ``ActionRejected`` and never
retried: the app has said no and asking again cannot change its mind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

import aiohttp
import structlog
from prometheus_client import CollectorRegistry, Counter

from sidecar.actions.action import Action
from sidecar.core.config import ActionsConfig, AppConfig
from sidecar.core.durations import format_duration
from sidecar.core.errors import ActionRejected, ActionUnavailable, clip
from sidecar.core.loops import Sleep
from sidecar.core.model import ActionKind
from sidecar.core.retry import retrying

__all__ = ["Actuator", "Outcome"]

log = structlog.get_logger(__name__)

Outcome = Literal["success", "rejected", "gave_up", "dry_run"]
"""How an action ended, as journaled."""

_ERROR_BODY_BYTES = 512
_SUCCESS_BODY_BYTES = 64 * 1024


async def _drain(resp: aiohttp.ClientResponse) -> None:
    """Read (a bounded part of) the body: a connection cut mid-response must fail the call."""
    left = _SUCCESS_BODY_BYTES
    while left > 0:
        chunk = await resp.content.read(left)
        if not chunk:
            return
        left -= len(chunk)


class Actuator:
    """Runs one action to its end: success, rejected, or gave up after bounded retries."""

    def __init__(
        self,
        app: AppConfig,
        cfg: ActionsConfig,
        session: aiohttp.ClientSession,
        registry: CollectorRegistry,
        *,
        dry_run: bool = False,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._session = session
        self._cfg = cfg
        self._dry_run = dry_run
        self._sleep = sleep
        self._timeout = aiohttp.ClientTimeout(total=cfg.timeout)
        self._urls: dict[ActionKind, str] = {
            "circuit_break": app.base_url + app.break_path,
            "circuit_reset": app.base_url + app.reset_path,
            "cache_flush": app.base_url + app.flush_path,
        }
        self._attempts = Counter(
            "leak_sidecar_actions_total",
            "Attempts to call the app's action endpoints, by action and outcome.",
            ["action", "outcome"],
            registry=registry,
        )
        self._retries = Counter(
            "leak_sidecar_action_retries_total",
            "Retries of calls to the app scheduled after a transient failure.",
            ["action"],
            registry=registry,
        )
        self._gave_up = Counter(
            "leak_sidecar_actions_given_up_total",
            "Actions abandoned after the retry policy ran out (the app is not reachable).",
            ["action"],
            registry=registry,
        )

    def url(self, kind: ActionKind) -> str:
        """The configured URL for an action kind."""
        return self._urls[kind]

    async def run(self, action: Action, on_attempt: Callable[[], None] | None = None) -> Outcome:
        """Call the app for ``action`` until it succeeds, is rejected or retries run out.

        ``on_attempt`` is told of every attempt as it starts (the status page counts them).
        """
        bound = log.bind(action=action.kind, action_id=action.id, source=action.source)
        if self._dry_run:
            self._attempts.labels(action.kind, "dry_run").inc()
            bound.warning("action.dry_run", url=self.url(action.kind), reason=action.reason)
            return "dry_run"
        retry = retrying(
            self._cfg.retry,
            (ActionUnavailable,),
            event="action.retry_scheduled",
            on_retry=lambda _: self._retries.labels(action.kind).inc(),
            sleep=self._sleep,
            action=action.kind,
            action_id=action.id,
        )
        try:
            await retry(self._attempt, action, on_attempt)
        except ActionRejected as exc:
            bound.error("action.rejected", status=exc.status, error=str(exc))
            return "rejected"
        except ActionUnavailable as exc:
            self._gave_up.labels(action.kind).inc()
            bound.error("action.gave_up", status=exc.status, error=str(exc))
            return "gave_up"
        bound.info("action.succeeded")
        return "success"

    async def _attempt(self, action: Action, on_attempt: Callable[[], None] | None) -> None:
        if on_attempt is not None:
            on_attempt()
        url = self._urls[action.kind]
        try:
            await self._post(action, url)
        except ActionRejected:
            self._attempts.labels(action.kind, "rejected").inc()
            raise
        except ActionUnavailable:
            self._attempts.labels(action.kind, "unavailable").inc()
            raise
        self._attempts.labels(action.kind, "success").inc()

    async def _post(self, action: Action, url: str) -> None:
        headers = {"Idempotency-Key": action.id}
        try:
            # No redirects: the call goes to the configured URL or nowhere.
            async with self._session.post(
                url,
                json=action.body(),
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                if resp.status < 300:
                    await _drain(resp)
                    return
                text = (await resp.content.read(_ERROR_BODY_BYTES)).decode(errors="replace")
        except TimeoutError as exc:
            raise ActionUnavailable(
                action.kind,
                url,
                f"no answer from {url} within {format_duration(self._cfg.timeout)}",
            ) from exc
        except aiohttp.ClientError as exc:
            raise ActionUnavailable(
                action.kind, url, f"cannot reach {url}: {clip(exc, 200)}"
            ) from exc
        message = f"{url} answered {resp.status}: {clip(text, 200)}"
        if resp.status == 429 or resp.status >= 500:
            raise ActionUnavailable(action.kind, url, message, resp.status)
        raise ActionRejected(action.kind, url, message, resp.status)
