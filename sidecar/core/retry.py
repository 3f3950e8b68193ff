"""Every retry policy of the sidecar is built here, from a ``RetryConfig``.

Retry only the named transient errors; stop on attempts or on elapsed time, whichever
comes first; exponential backoff with full jitter, capped; re-raise the last error; make
every scheduled retry visible (a log event and a counter). Never tenacity's bare
defaults: they retry forever.

One policy does retry without end, on purpose: ``converging``, for the reconciler,
whose job is to make the app match the desired circuit state however long the app
takes; it is bounded in its wait (capped backoff), visible in every retry, and stops
only when its caller says so (shutdown).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from sidecar.core.config_fields import RetryConfig
from sidecar.core.loops import Sleep

__all__ = ["Sleep", "converging", "retrying"]


log = structlog.get_logger(__name__)


def _before_sleep(
    event: str, on_retry: Callable[[RetryCallState], None] | None, context: dict[str, object]
) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            event,
            attempt=state.attempt_number,
            wait_seconds=round(wait, 3),
            error=str(exc),
            **context,
        )
        if on_retry is not None:
            on_retry(state)

    return before_sleep


def converging(
    initial_backoff: float,
    max_backoff: float,
    transient: tuple[type[BaseException], ...],
    *,
    event: str,
    until: Callable[[], bool],
    on_retry: Callable[[RetryCallState], None] | None = None,
    sleep: Sleep | None = None,
    **log_context: object,
) -> AsyncRetrying:
    """Retry ``transient`` errors until success or ``until()``: never on attempts or time.

    Exponential backoff with full jitter from ``initial_backoff``, each wait capped at
    ``max_backoff``; every retry logged as ``event`` and counted by ``on_retry``; when
    ``until()`` holds after a failure, the last error is re-raised.
    """
    kwargs: dict[str, object] = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    return AsyncRetrying(
        retry=retry_if_exception_type(transient),
        # Neither attempts nor time: only the caller ends it.
        stop=lambda _state: until(),
        wait=wait_random_exponential(multiplier=initial_backoff, max=max_backoff),
        before_sleep=_before_sleep(event, on_retry, log_context),
        reraise=True,
        **kwargs,  # type: ignore[arg-type]
    )


def retrying(
    cfg: RetryConfig,
    transient: tuple[type[BaseException], ...],
    *,
    event: str,
    on_retry: Callable[[RetryCallState], None] | None = None,
    sleep: Sleep | None = None,
    **log_context: object,
) -> AsyncRetrying:
    """An ``AsyncRetrying`` for ``async for attempt in ...`` loops.

    ``event`` is the log event emitted before each sleep (e.g. ``action.retry_scheduled``),
    with the attempt number, the wait and the error; ``on_retry`` counts it.
    """

    kwargs: dict[str, object] = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    return AsyncRetrying(
        retry=retry_if_exception_type(transient),
        stop=stop_after_attempt(cfg.attempts) | stop_after_delay(cfg.max_elapsed),
        wait=wait_random_exponential(multiplier=cfg.initial_backoff, max=cfg.max_backoff),
        before_sleep=_before_sleep(event, on_retry, log_context),
        reraise=True,
        **kwargs,  # type: ignore[arg-type]
    )
