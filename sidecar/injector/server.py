"""``leak-sidecar injector``: the mutating admission webhook, served over HTTPS.

``POST /inject/pod`` injects a pod that carries ``leak-sidecar.io/inject: "true"``;
``POST /inject/namespace`` injects every pod not annotated ``"false"`` (the
MutatingWebhookConfiguration calls it for namespaces labelled
``leak-sidecar.io/inject=enabled``). Both answer every AdmissionReview with "allowed",
patched or not (``inject.review``); a body that is not one gets a 400 saying why. Every
decision is logged (``injector.decision``) and counted
(``leak_sidecar_injector_decisions_total{decision}``); ``/healthz``, ``/readyz`` and
``/metrics`` are the sidecar's own (``web.server``), and so are the limits on every
client: the body cap, header and body timeouts, the connection cap.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from sidecar.core import logs
from sidecar.core.config_fields import Listen
from sidecar.core.errors import ConfigError
from sidecar.core.loops import stop_on_signals
from sidecar.inject.review import DECISIONS, Decision, ReviewInvalid, review
from sidecar.inject.settings import InjectSettings, load_settings
from sidecar.injector.tls import ServingCertificate
from sidecar.web.bodies import json_error, refuse_non_json
from sidecar.web.server import Limits, Server, build_app

__all__ = ["MAX_REVIEW_BYTES", "Injector", "run_injector"]

log = structlog.get_logger(__name__)

MAX_REVIEW_BYTES = 4 * 1024 * 1024
"""An AdmissionReview holds one pod, which etcd caps at 1.5MiB; twice that and some."""
_SHUTDOWN_GRACE = 5.0  # the API server gives a webhook timeoutSeconds (5) per call


class Injector:
    """The webhook's HTTPS server; ``run`` serves until ``stop`` is set."""

    def __init__(
        self,
        settings: InjectSettings,
        certificate: ServingCertificate,
        *,
        listen: str,
        registry: CollectorRegistry,
    ) -> None:
        self.settings = settings
        self.certificate = certificate
        self.listen = listen
        self.decisions = Counter(
            "leak_sidecar_injector_decisions",
            f"AdmissionReviews answered by the injector, by decision ({', '.join(DECISIONS)}).",
            ["decision"],
            registry=registry,
        )
        for decision in DECISIONS:
            self.decisions.labels(decision)
        self._ready = False
        self.started = asyncio.Event()
        self.port: int | None = None
        app = build_app(
            registry=registry,
            token=None,  # the API server is the client: TLS and the NetworkPolicy guard it
            max_body_bytes=MAX_REVIEW_BYTES,
            limits=Limits(header_timeout=30.0, body_timeout=10.0, max_connections=256),
            health=lambda: (True, "serving"),
            ready=lambda: (self._ready, "listening" if self._ready else "starting"),
            routes=[
                web.post("/inject/pod", self._pod),
                web.post("/inject/namespace", self._namespace),
            ],
        )
        self.server = Server(app, shutdown_grace=_SHUTDOWN_GRACE)

    async def run(self, stop: asyncio.Event) -> None:
        """Listen, serve until ``stop`` is set, finish in-flight reviews, stop."""
        try:
            self.port = await self.server.start(
                self.listen, ssl_context=self.certificate.context, key="--web.listen-address"
            )
            self._ready = True
            self.started.set()
            host = self.listen.rpartition(":")[0]
            log.info("injector.started", listen=f"{host}:{self.port}")
            await stop.wait()
        finally:
            self._ready = False
            await asyncio.shield(self.server.stop())
            log.info("injector.stopped")

    async def _pod(self, request: web.Request) -> web.Response:
        return await self._answer(request, "pod", default=False)

    async def _namespace(self, request: web.Request) -> web.Response:
        return await self._answer(request, "namespace", default=True)

    async def _answer(self, request: web.Request, webhook: str, *, default: bool) -> web.Response:
        refused = refuse_non_json(request)
        if refused is not None:
            self._invalid(webhook, f"content type {request.content_type!r}")
            return refused
        body = await request.read()  # bounded in size and time by the server's middleware
        try:
            outcome = review(body, self.settings, default=default)
        except ReviewInvalid as exc:
            self._invalid(webhook, str(exc))
            return json_error(400, str(exc))
        self._count(outcome.decision)
        (log.warning if outcome.decision == "refused" else log.info)(
            "injector.decision",
            webhook=webhook,
            decision=outcome.decision,
            reason=outcome.reason,
            uid=outcome.uid,
            namespace=outcome.namespace,
            pod=outcome.pod,
            patch_operations=len(outcome.patch),
        )
        return web.json_response(outcome.response)

    def _invalid(self, webhook: str, reason: str) -> None:
        self._count("invalid")
        log.warning("injector.decision", webhook=webhook, decision="invalid", reason=reason)

    def _count(self, decision: Decision) -> None:
        self.decisions.labels(decision).inc()


def run_injector(
    *,
    listen: str,
    cert_file: Path,
    key_file: Path,
    settings_path: Path | None,
    log_format: str,
    log_level: str,
) -> int:
    """``leak-sidecar injector``: until SIGTERM or SIGINT; 0 on a clean stop, 1 on a
    crash, 2 when the settings, the certificate or the listen address are wrong."""
    logs.configure(log_format, log_level)
    try:
        Listen.parse(listen)
    except ValueError as exc:
        print(f"--web.listen-address: {exc}", file=sys.stderr)
        return 2
    try:
        settings = load_settings(settings_path)
        certificate = ServingCertificate(cert_file, key_file)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2

    async def main() -> None:
        stop = stop_on_signals()
        injector = Injector(settings, certificate, listen=listen, registry=CollectorRegistry())
        await injector.run(stop)

    try:
        asyncio.run(main())
    except ConfigError as exc:  # the address is busy or not this host's
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: logged with its traceback, exit 1
        log.exception("injector.crashed", error=repr(exc))
        return 1
    return 0
