"""Retry policy of sink writes (tenacity): an unreachable store is waited for, other failures are retried a
few times, a ``Refused`` write is final; the last error is re-raised.

A store outage (``sinks.outage.unreachable_store``: connection refused or lost, the server shutting down or
starting up) is retried with back-off for up to ``sink_outage_max_s``, so the micro-batch waits instead of
failing and the Spark query does not stop; the outage is logged once when it starts and once when it ends
(``sinks.outage.Outages``). Any other error is retried ``sink_retry_attempts`` times.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import structlog
from tenacity import RetryCallState, Retrying, retry_if_not_exception_type, wait_exponential

from streaming_jobs.bars.sinks.outage import OUTAGES, Store, unreachable_store
from tickflow.settings import Settings

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

MAX_BACKOFF_S = 10.0


class Refused(Exception):
    """A store refused the data itself (not a transient failure): retrying the same write cannot help."""


class _Budget:
    """The stop condition of one sink write: ``sink_retry_attempts`` failures other than an outage, or
    ``sink_outage_max_s`` since the write first found its store unreachable. Tracks the outages it saw."""

    def __init__(self, settings: Settings, what: str) -> None:
        self.settings = settings
        self.what = what
        self.failures = 0
        self.waited_for: set[Store] = set()
        self.first_unreachable: float | None = None
        """When this write first found its store unreachable (monotonic s)."""

    def __call__(self, state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        store = unreachable_store(error)
        if store is None or error is None:  # (error is never None: only failures are retried)
            self.answered()  # a store that answers with an error is reachable
            self.failures += 1
            return self.failures >= self.settings.sink_retry_attempts
        self.waited_for.add(store)
        OUTAGES.down(store, self.what, error)
        now = time.monotonic()
        self.first_unreachable = self.first_unreachable or now
        waited_s = now - self.first_unreachable
        if waited_s < self.settings.sink_outage_max_s:
            return False
        log.error("store unreachable for longer than sink_outage_max_s, giving up", store=store,
                  sink=self.what, waited_s=round(waited_s, 1), error=repr(error))  # fmt: skip
        return True

    def answered(self) -> None:
        """The stores this write waited for answered: their outages end."""
        for store in self.waited_for:
            OUTAGES.up(store)
        self.waited_for.clear()


def with_retries(settings: Settings, what: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call ``fn`` (a write of sink ``what``) until it succeeds, sleeping ``sink_retry_backoff_s`` *
    2^(try-1), at most 10 s, between tries: while its store is unreachable for up to ``sink_outage_max_s``
    (one log line when the outage starts and one when it ends), on any other error up to
    ``sink_retry_attempts`` tries (a log line each). A ``Refused`` error is final: no retry can change the
    data's answer.

    Raises:
        Refused: at once.
        Exception: whatever the last try raised, when the tries or the outage bound ran out.
    """
    budget = _Budget(settings, what)

    def _log(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if unreachable_store(error) is None:
            log.warning("sink write failed, retrying", sink=what, attempt=budget.failures, error=repr(error))

    retrying = Retrying(
        stop=budget,
        wait=wait_exponential(multiplier=settings.sink_retry_backoff_s, max=MAX_BACKOFF_S),
        before_sleep=_log,
        retry=retry_if_not_exception_type(Refused),
        reraise=True,
    )
    try:
        result = retrying(fn, *args, **kwargs)
    except Refused:
        budget.answered()
        raise
    budget.answered()
    return result
