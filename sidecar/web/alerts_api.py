"""POST /alerts: Alertmanager's webhook, handed to the receiver.

Wrong content type is 415; invalid JSON, a schema problem or another version is 422
with the validation message; nothing is acted on. The answer is 200 once the resulting
actions are journaled, not after they ran: the calls run in the background, and a slow
app must not make Alertmanager time out and resend. 503 only when the journal cannot be
written, the one failure a retry can cure.
"""

from __future__ import annotations

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from sidecar.actions.receiver import Receiver, parse_payload
from sidecar.core.errors import JournalError, clip, validation_message
from sidecar.web.server import json_error, refuse_non_json

__all__ = ["routes"]

log = structlog.get_logger(__name__)


def routes(receiver: Receiver, registry: CollectorRegistry) -> list[web.RouteDef]:
    """``POST /alerts`` on ``receiver``, every answer counted by status code."""
    requests = Counter(
        "leak_sidecar_webhook_requests_total",
        "Webhook requests on /alerts handled by the receiver, by HTTP status code.",
        ["code"],
        registry=registry,
    )

    def answer(response: web.Response) -> web.Response:
        requests.labels(str(response.status)).inc()
        return response

    async def handle(request: web.Request) -> web.Response:
        refused = refuse_non_json(request)
        if refused is not None:
            return answer(refused)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            requests.labels("413").inc()
            raise  # the server turns it into its JSON 413
        try:
            payload = parse_payload(body)
        except ValidationError as exc:
            message = validation_message(exc)
            log.warning("webhook.invalid", error=clip(message, 500))
            return answer(json_error(422, f"invalid webhook payload: {message}"))
        if payload.truncated_alerts:
            log.warning(
                "webhook.truncated", group_key=payload.group_key, count=payload.truncated_alerts
            )
        try:
            result = await receiver.deliver([a.to_alert() for a in payload.alerts], "alertmanager")
        except JournalError:
            return answer(
                json_error(503, "cannot journal the actions, nothing was done; retry later")
            )
        return answer(
            web.json_response(
                {
                    "status": "success",
                    "alerts": len(payload.alerts),
                    "duplicates": result.duplicates,
                    "cooled_down": result.cooled_down,
                    "actions": [{"id": a.id, "action": a.kind} for a in result.actions],
                }
            )
        )

    return [web.post("/alerts", handle)]
