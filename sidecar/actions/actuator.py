"""Calls to the app: one POST per action, retried on transient failures, every outcome seen.

The URL of every call comes from config (``app.base_url`` + the action's path), never
from alert data. The JSON body names the action, the reason, who asked and the alerts;
the ``Idempotency-Key`` header is the journaled action id, the same on every attempt
and after a restart, so that the app can recognise a repeat. Connection errors,
timeouts, 429 and 5xx are ``ActionUnavailable`` and retried with exponential backoff and
full jitter, bounded in attempts and time; any other 4xx is ``ActionRejected`` and never
retried: the app has said no and asking again cannot change its mind.

Circuit calls are not run to an end here: the reconciler (``reconcile``) makes one
``call`` at a time, for the current generation only, and decides when to send again.
Each carries its generation (header ``X-Leak-Sidecar-Generation`` and ``generation`` in
the body), so that the app can ignore a command older than one it applied; a 409 that
names the generation the app applied is ``GenerationBehind`` (the sidecar's journal was
lost while the app kept running: the reconciler catches up). ``observe`` reads the
app's own view of its circuit when ``app.state_path`` is set.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import structlog
from prometheus_client import CollectorRegistry, Counter

from sidecar.actions.action import Action
from sidecar.core.config import AppConfig
from sidecar.core.config_actions import ActionsConfig
from sidecar.core.durations import format_duration
from sidecar.core.errors import ActionRejected, ActionUnavailable, CredentialsError, clip
from sidecar.core.loops import Sleep
from sidecar.core.model import ActionKind
from sidecar.core.outbound import Outbound
from sidecar.core.retry import retrying

__all__ = ["GENERATION_HEADER", "Actuator", "AppCircuit", "GenerationBehind", "Outcome"]

log = structlog.get_logger(__name__)

Outcome = Literal["success", "rejected", "gave_up", "dry_run"]
"""How an action ended, as journaled."""

GENERATION_HEADER = "X-Leak-Sidecar-Generation"


@dataclass(frozen=True, slots=True)
class AppCircuit:
    """What the app's state endpoint says of its circuit."""

    state: Literal["open", "closed"]
    generation: int | None
    """The generation it last applied, when it says."""


class GenerationBehind(ActionRejected):
    """409 with ``{"generation": n}``: the app applied generation ``applied``, newer than
    the call's. Only a sidecar that lost its journal while the app kept running sends one."""

    def __init__(self, action: str, url: str, message: str, applied: int) -> None:
        super().__init__(action, url, message, 409)
        self.applied = applied


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
        outbound: Outbound | None = None,
    ) -> None:
        self._session = session
        # Credentials and TLS of app.http_config, files re-read when they change.
        self._outbound = outbound or Outbound(app.http_config)
        self._cfg = cfg
        self._dry_run = dry_run
        self._sleep = sleep
        self._timeout = aiohttp.ClientTimeout(total=cfg.timeout)
        self._urls: dict[ActionKind, str] = {
            "circuit_break": app.base_url + app.break_path,
            "circuit_reset": app.base_url + app.reset_path,
            "cache_flush": app.base_url + app.flush_path,
        }
        self.dry_run = dry_run
        self._state_url = None if app.state_path is None else app.base_url + app.state_path
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

    def reconfigure(self, cfg: ActionsConfig) -> None:
        """Use ``cfg``'s timeout and retry policy from the next call on (a reload)."""
        self._cfg = cfg
        self._timeout = aiohttp.ClientTimeout(total=cfg.timeout)

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

    async def call(self, action: Action, generation: int) -> None:
        """One attempt at a circuit call for ``generation``; raises ``ActionError`` on failure."""
        await self._attempt(action, None, generation)

    @property
    def observes(self) -> bool:
        """Whether the app has a state endpoint (``app.state_path``)."""
        return self._state_url is not None

    async def observe(self) -> AppCircuit:
        """GET the app's state endpoint; ``ActionError`` when it cannot say."""
        url = self._state_url
        if url is None:
            raise RuntimeError("app.state_path is not set")
        try:
            async with self._outbound.request(
                self._session, "GET", url, timeout=self._timeout, allow_redirects=False
            ) as resp:
                body = await resp.content.read(_ERROR_BODY_BYTES if resp.status >= 300 else 4096)
        except TimeoutError as exc:
            raise ActionUnavailable("observe", url, f"no answer from {url}") from exc
        except CredentialsError as exc:
            raise ActionUnavailable("observe", url, str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise ActionUnavailable(
                "observe", url, f"cannot reach {url}: {clip(exc, 200)}"
            ) from exc
        if resp.status >= 300:
            raise ActionUnavailable(
                "observe",
                url,
                f"{url} answered {resp.status}: "
                f"{clip(self._outbound.redact(body.decode(errors='replace')), 200)}",
                resp.status,
            )
        return _app_circuit(url, body)

    async def _attempt(
        self, action: Action, on_attempt: Callable[[], None] | None, generation: int | None = None
    ) -> None:
        if on_attempt is not None:
            on_attempt()
        url = self._urls[action.kind]
        try:
            await self._post(action, url, generation)
        except ActionRejected:
            self._attempts.labels(action.kind, "rejected").inc()
            raise
        except ActionUnavailable:
            self._attempts.labels(action.kind, "unavailable").inc()
            raise
        self._attempts.labels(action.kind, "success").inc()

    async def _post(self, action: Action, url: str, generation: int | None = None) -> None:
        headers = {"Idempotency-Key": action.id}
        body = action.body()
        if generation is not None:
            headers[GENERATION_HEADER] = str(generation)
            body["generation"] = generation
        try:
            # No redirects: the call goes to the configured URL or nowhere.
            async with self._outbound.request(
                self._session,
                "POST",
                url,
                json=body,
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
        except CredentialsError as exc:  # mid-rotation: the next attempt may find the file
            raise ActionUnavailable(action.kind, url, str(exc)) from exc
        except aiohttp.ClientSSLError as exc:  # the certificate will not verify next time either
            raise ActionRejected(
                action.kind, url, f"TLS with {url} failed: {clip(exc, 200)}"
            ) from exc
        except aiohttp.ClientError as exc:
            raise ActionUnavailable(
                action.kind, url, f"cannot reach {url}: {clip(exc, 200)}"
            ) from exc
        message = f"{url} answered {resp.status}: {clip(self._outbound.redact(text), 200)}"
        if resp.status == 429 or resp.status >= 500:
            raise ActionUnavailable(action.kind, url, message, resp.status)
        applied = _applied_generation(text) if resp.status == 409 else None
        if generation is not None and applied is not None and applied >= generation:
            raise GenerationBehind(action.kind, url, message, applied)
        raise ActionRejected(action.kind, url, message, resp.status)


def _applied_generation(text: str) -> int | None:
    """The generation a 409's JSON body says the app applied, if it says one."""
    try:
        doc: Any = json.loads(text)
    except ValueError:
        return None
    gen = doc.get("generation") if isinstance(doc, dict) else None
    return gen if type(gen) is int and gen >= 0 else None


def _app_circuit(url: str, body: bytes) -> AppCircuit:
    """The state endpoint's answer: ``{"state": "open"|"closed", "generation": n}``."""
    try:
        doc: Any = json.loads(body)
    except ValueError:
        doc = None
    state = doc.get("state") if isinstance(doc, dict) else None
    gen = doc.get("generation") if isinstance(doc, dict) else None
    if state not in ("open", "closed") or not (gen is None or type(gen) is int):
        raise ActionRejected(
            "observe",
            url,
            f'expected {{"state": "open" or "closed", "generation": integer}} from {url}, '
            f"got {clip(body.decode(errors='replace'), 200)}",
        )
    return AppCircuit(state, gen)
