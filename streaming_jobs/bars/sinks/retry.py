"""Retry policy of sink writes (tenacity): an unreachable store is waited for, other failures are retried a
few times, a ``Refused`` write is final; the last error is re-raised.

A store outage (``sinks.outage.unreachable_store``: connection refused or lost, the server shutting down or
starting up) is retried with back-off for up to ``sink_outage_max_s``, so the micro-batch waits instead of
failing and the Spark query does not stop; the outage is logged once when it starts and once when it ends
(``sinks.outage.Outages``). Any other error is retried ``sink_retry_attempts`` times. A job that is asked
to stop gives up its waiting write at once (``SinkRetries``).
"""

from __future__ import annotations

import threading
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
    """The stop condition of one sink write: ``sink_retry_attempts`` failures other than an outage,
    ``sink_outage_max_s`` since the write first found its store unreachable, or any failure once ``stopping``
    is set. Tracks the outages it saw."""

    def __init__(self, settings: Settings, what: str, stopping: threading.Event | None) -> None:
        self.settings = settings
        self.what = what
        self.stopping = stopping
        self.failures = 0
        self.waited_for: set[Store] = set()
        self.first_unreachable: float | None = None
        """When this write first found its store unreachable (monotonic s)."""

    def __call__(self, state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        if self.stopping is not None and self.stopping.is_set():
            log.warning("sink write given up: the job is stopping; its batch is re-run on the next start",
                        sink=self.what, error=repr(error))  # fmt: skip
            return True
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


class SinkRetries:
    """The retry policy of one job's sink writes, bound to its settings and its stop event: once ``stopping``
    is set, a write's back-off sleep ends at once and a failing write gives up (one log
    line), so the job stops within seconds during an outage. The write's batch then fails and is re-run on the
    next start, which every sink write allows (upserts, set-if-not-older, the same records again)."""

    def __init__(self, settings: Settings, stopping: threading.Event | None = None) -> None:
        self.settings = settings
        self.stopping = stopping

    def __call__(self, what: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn`` (a write of sink ``what``) until it succeeds, sleeping ``sink_retry_backoff_s`` *
        2^(try-1), at most 10 s, between tries: while its store is unreachable for up to
        ``sink_outage_max_s`` (one log line when the outage starts and one when it ends), on any other error
        up to ``sink_retry_attempts`` tries (a log line each), and never once ``stopping`` is set. A
        ``Refused`` error is final: no retry can change the data's answer.

        Raises:
            Refused: at once.
            Exception: whatever the last try raised, when the tries or the outage bound ran out or the job is
                stopping.
        """
        budget = _Budget(self.settings, what, self.stopping)

        def _log(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            if unreachable_store(error) is None:
                log.warning(
                    "sink write failed, retrying", sink=what, attempt=budget.failures, error=repr(error)
                )

        retrying = Retrying(
            stop=budget,
            wait=wait_exponential(multiplier=self.settings.sink_retry_backoff_s, max=MAX_BACKOFF_S),
            sleep=time.sleep if self.stopping is None else self.stopping.wait,
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


def with_retries(settings: Settings, what: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``SinkRetries(settings)(what, fn, *args, **kwargs)``: a write retried without a stop event (in the
    executors, whose tasks Spark cancels when the job stops)."""
    return SinkRetries(settings)(what, fn, *args, **kwargs)
