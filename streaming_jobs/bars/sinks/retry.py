"""Retry with exponential back-off for sink writes (tenacity); the last error is re-raised."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from tickflow.settings import Settings

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

MAX_BACKOFF_S = 10.0


class Refused(Exception):
    """A store refused the data itself (not a transient failure): retrying the same write cannot help."""


def with_retries(settings: Settings, what: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call ``fn`` up to ``sink_retry_attempts`` times, sleeping ``sink_retry_backoff_s`` * 2^(try-1) (at
    most 10 s) between tries. A ``Refused`` error is final: no retry can change the data's answer.

    Raises:
        Exception: whatever the last try raised, or ``Refused`` at once.
    """

    def _log(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("sink write failed, retrying", sink=what, attempt=state.attempt_number, error=repr(error))

    retrying = Retrying(
        stop=stop_after_attempt(settings.sink_retry_attempts),
        wait=wait_exponential(multiplier=settings.sink_retry_backoff_s, max=MAX_BACKOFF_S),
        before_sleep=_log,
        retry=retry_if_not_exception_type(Refused),
        reraise=True,
    )
    return retrying(fn, *args, **kwargs)
