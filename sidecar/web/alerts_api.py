"""POST /alerts: Alertmanager's webhook, handed to the receiver.

Wrong content type is 415; invalid JSON, a schema problem or another version is 422
naming the first problem (``key.path: problem``, the body's values not repeated);
nothing is acted on. Each alert of the group is validated
on its own: an invalid one (an impossible date, say) is refused alone, the others are
acted on, and the answer lists the refused (``refused``, each a 422); when every alert
is refused the answer is 422. The answer is 200 once the resulting
actions are journaled, not after they ran: the calls run in the background, and a slow
app must not make Alertmanager time out and resend. 503 only when the journal cannot be
written, the one failure a retry can cure. Alerts about another sidecar are forwarded
to it once this pod's are journaled (``actions.forward``); 502 when an owner did not
accept them, so that
Alertmanager retries the notification (this pod's own alerts were acted on, and its
dedupe makes the retry harmless).
"""

from __future__ import annotations

import msgspec
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from sidecar.actions.forward import HOP_HEADER, ForwardFailed
from sidecar.actions.receiver import Receiver, parse_payload
from sidecar.core.errors import MAX_PROBLEMS, JournalError, clip, problems_message
from sidecar.core.validation import json_problem
from sidecar.web.bodies import json_error, refuse_non_json

__all__ = ["routes"]

log = structlog.get_logger(__name__)


def routes(receiver: Receiver, registry: CollectorRegistry) -> list[web.RouteDef]:
    """``POST /alerts`` on ``receiver``, every answer counted by status code."""
    return [web.post("/alerts", _Webhook(receiver, registry).handle)]


class _Webhook:
    """The handler's owner; ``Observed``, so that the server's 401, 413 and 500 are counted too."""

    def __init__(self, receiver: Receiver, registry: CollectorRegistry) -> None:
        self._receiver = receiver
        self._requests = Counter(
            "leak_sidecar_webhook_requests_total",
            "Requests on /alerts by the HTTP status of the answer, refusals by the server's "
            "auth and size checks included.",
            ["code"],
            registry=registry,
        )

    def answered(self, status: int) -> None:
        """Count one answer."""
        self._requests.labels(str(status)).inc()

    async def handle(self, request: web.Request) -> web.Response:
        """Validate, act, answer."""
        refused = refuse_non_json(request)
        if refused is not None:
            return refused
        body = await request.read()  # read and bounded by the server already
        try:
            payload = parse_payload(body)
        except msgspec.DecodeError as exc:
            # The one problem, in our words and without the body's values; bounded.
            message = clip(json_problem(exc).line())
            log.warning("webhook.invalid", error=message)
            return json_error(422, f"invalid webhook payload: {message}")
        errors = [r.error for r in payload.refused]
        if payload.refused:
            log.warning(
                "webhook.alerts_refused",
                group_key=clip(payload.group_key, 200),
                refused=len(errors),
                accepted=len(payload.alerts),
                error=clip(errors[0], 300),
            )
            if not payload.alerts:
                message = problems_message(errors[:MAX_PROBLEMS], len(errors))
                return json_error(422, f"invalid webhook payload: {message}")
        if payload.truncated_alerts:
            log.warning(
                "webhook.truncated",
                group_key=clip(payload.group_key, 200),
                count=payload.truncated_alerts,
            )
        try:
            result = await self._receiver.deliver(
                [a.to_alert() for a in payload.alerts],
                "alertmanager",
                hop=request.headers.get(HOP_HEADER),
            )
        except JournalError:
            return json_error(503, "cannot journal the actions, nothing was done; retry later")
        except ForwardFailed as exc:
            message = clip(str(exc), 500)
            return json_error(502, f"alerts for another sidecar were not accepted: {message}")
        answer: dict[str, object] = {
            "status": "success",
            "alerts": len(payload.alerts),
            "duplicates": result.duplicates,
            "cooled_down": result.cooled_down,
            "forwarded": result.forwarded,
            "actions": [{"id": a.id, "action": a.kind} for a in result.actions],
        }
        if payload.refused:
            # The others were acted on; these were not (422 each), at most a few listed.
            answer["refused"] = [
                {"index": r.index, "status": 422, "error": r.error}
                for r in payload.refused[:MAX_PROBLEMS]
            ]
            answer["refused_count"] = len(payload.refused)
        return web.json_response(answer)
