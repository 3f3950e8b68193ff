"""One GET of the app's expvar endpoint: bounded in time and size, every failure named.

``scrape.timeout`` covers the whole answer (a server that trickles bytes times out) and
``scrape.max_body_bytes`` is counted while the body streams in, so a huge or endless
answer is cut off without being held. Each failure is a ``ScrapeError`` whose
``reason`` is one of ``ERROR_REASONS``; refused connections, timeouts, resets and
5xx/429 answers are ``ScrapeTransient``: a retry within the interval may cure them.
Credentials and TLS come from ``core.outbound`` (``app.http_config``); a certificate
that does not verify is ``tls`` and not retried, a credentials file unusable right now
(mid-rotation) is ``credentials`` and is.
"""

from __future__ import annotations

import functools
import math

import aiohttp

from sidecar.core.config_http import HttpClientConfig
from sidecar.core.durations import format_duration
from sidecar.core.errors import CredentialsError, ScrapeError, ScrapeTransient, clip
from sidecar.core.outbound import Outbound

__all__ = ["ERROR_REASONS", "TRANSIENT_REASONS", "BodyTooLarge", "fetch"]

ERROR_REASONS = (
    "refused",
    "connect",
    "connection",
    "timeout",
    "http_3xx",
    "http_4xx",
    "http_5xx",
    "http",
    "tls",
    "credentials",
    "body_too_large",
    "invalid_json",
    "not_object",
    "too_deep",
    "too_many_keys",
    "internal",
)
"""Every ``reason`` label of ``leak_sidecar_scrape_errors_total``."""
TRANSIENT_REASONS = (
    "refused",
    "connect",
    "connection",
    "timeout",
    "http_4xx",
    "http_5xx",
    "credentials",
)
"""The reasons a retry is tried for (429 is a 4xx that asks for one)."""

_CHUNK = 64 * 1024
_HEADERS = {"Accept": "application/json"}  # never mutated: Outbound merges into a new dict
_PLAIN = Outbound(HttpClientConfig())


class BodyTooLarge(ScrapeError):
    """The body passed ``scrape.max_body_bytes``; ``seen_bytes`` is how much was seen."""

    def __init__(self, message: str, seen_bytes: int) -> None:
        super().__init__("body_too_large", message)
        self.seen_bytes = seen_bytes


@functools.lru_cache(maxsize=8)
def _timeout(within: float) -> aiohttp.ClientTimeout:
    """``within`` seconds for the whole exchange, exactly.

    aiohttp's total timeout runs from the request until the connection is released, so
    it covers connecting, the headers and every byte of the body; it also keeps the
    shared session's own timeout out of the scrape. Only its rounding must go: by
    default a total of 5s or more is rounded up to the next whole second. (An outer
    ``asyncio.timeout`` did the same job at about 9% more instructions per GET.)
    """
    return aiohttp.ClientTimeout(total=within, ceil_threshold=math.inf)


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    *,
    within: float,
    limit: int,
    outbound: Outbound | None = None,
) -> bytearray:
    """GET ``url`` and return its body within ``within`` seconds, or raise a
    ``ScrapeError`` naming the reason."""
    try:
        async with (outbound or _PLAIN).request(
            session,
            "GET",
            url,
            timeout=_timeout(within),
            allow_redirects=False,
            headers=_HEADERS,
        ) as resp:
            if resp.status != 200:
                raise _status_error(url, resp.status, resp.reason)
            return await _read(url, resp, limit)
    except TimeoutError as exc:
        raise ScrapeTransient(
            "timeout",
            f"no complete answer from {url} within scrape.timeout ({format_duration(within)})",
        ) from exc
    except CredentialsError as exc:
        raise ScrapeTransient("credentials", str(exc)) from exc
    except aiohttp.ClientSSLError as exc:
        # Certificate or handshake refused: the same next time, unless the files change.
        raise ScrapeError("tls", f"TLS with {url} failed: {clip(exc, 200)}") from exc
    except aiohttp.ClientConnectorError as exc:
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        raise ScrapeTransient(
            "refused" if refused else "connect", f"cannot connect to {url}: {clip(exc, 200)}"
        ) from exc
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
        raise ScrapeTransient(
            "connection", f"connection to {url} failed: {clip(exc, 200)}"
        ) from exc
    except aiohttp.ClientError as exc:
        raise ScrapeError("http", f"bad answer from {url}: {clip(exc, 200)}") from exc


async def _read(url: str, resp: aiohttp.ClientResponse, limit: int) -> bytearray:
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise BodyTooLarge(
            f"{url} announces {declared} bytes, more than scrape.max_body_bytes ({limit})",
            declared,
        )
    # One growing buffer, decoded in place: no second copy of a large body.
    body = bytearray()
    async for chunk in resp.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(
                f"{url} sent more than scrape.max_body_bytes ({limit} bytes); "
                "raise it or export less",
                len(body),
            )
    return body


def _status_error(url: str, status: int, text: str | None) -> ScrapeError:
    reason = f"http_{status // 100}xx" if 300 <= status < 600 else "http"
    message = f"{url} answered {status} {clip(text or '', 100)}".rstrip()
    if status >= 500 or status == 429:
        return ScrapeTransient(reason, message)
    return ScrapeError(reason, message)
