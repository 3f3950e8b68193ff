"""One bounded GET of a pprof endpoint: the whole answer within a timeout, under a size cap.

Every failure is a ``CaptureError`` whose ``reason`` is one of ``REASONS``: an app that
does not serve pprof (refused, 404) is ``not_available``, told apart from one that failed
to answer, so that the count says which is which and nothing is retried in a loop.
The expvar GET goes to the app's own listener with ``app.http_config``'s credentials
(``outbound``); the pprof listener is the app's loopback-only one and gets none.
"""

from __future__ import annotations

import asyncio

import aiohttp

from sidecar.core.durations import format_duration
from sidecar.core.errors import CredentialsError, EvidenceError, clip
from sidecar.core.outbound import Outbound

__all__ = ["REASONS", "CaptureError", "get"]

REASONS = (
    "not_available",
    "timeout",
    "too_large",
    "http",
    "connection",
    "credentials",
    "invalid",
)
"""Every ``reason`` label of ``leak_sidecar_evidence_failures_total``."""

_CHUNK = 64 * 1024


class CaptureError(EvidenceError):
    """A part of the evidence could not be fetched; ``reason`` (one of ``REASONS``) says why."""


async def get(
    session: aiohttp.ClientSession,
    url: str,
    *,
    within: float,
    limit: int,
    outbound: Outbound | None = None,
) -> bytes:
    """GET ``url``; its body within ``within`` seconds and ``limit`` bytes, or ``CaptureError``."""
    try:
        async with asyncio.timeout(within):
            # The outer timeout holds ``within``; the session's own must not cut it short.
            unbounded = aiohttp.ClientTimeout(total=None)
            opened = (
                outbound.request(session, "GET", url, timeout=unbounded, allow_redirects=False)
                if outbound is not None
                else session.get(url, timeout=unbounded, allow_redirects=False)
            )
            async with opened as resp:
                if resp.status == 404:
                    raise CaptureError(
                        "not_available",
                        f"{url} answered 404: the app serves no net/http/pprof there",
                    )
                if resp.status != 200:
                    raise CaptureError(
                        "http", f"{url} answered {resp.status} {clip(resp.reason or '', 100)}"
                    )
                if resp.content_length is not None and resp.content_length > limit:
                    raise CaptureError(
                        "too_large", f"{url} announces {resp.content_length} bytes, over {limit}"
                    )
                body = bytearray()
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    body += chunk
                    if len(body) > limit:
                        raise CaptureError("too_large", f"{url} sent more than {limit} bytes")
                return bytes(body)
    except CredentialsError as exc:
        raise CaptureError("credentials", f"no request to {url}: {exc}") from exc
    except TimeoutError as exc:
        raise CaptureError(
            "timeout", f"no complete answer from {url} within {format_duration(within)}"
        ) from exc
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, ConnectionRefusedError):
            raise CaptureError(
                "not_available", f"{url} refused the connection: nothing serves pprof there"
            ) from exc
        raise CaptureError("connection", f"cannot connect to {url}: {clip(exc, 200)}") from exc
    except aiohttp.ClientError as exc:
        raise CaptureError("connection", f"connection to {url} failed: {clip(exc, 200)}") from exc
