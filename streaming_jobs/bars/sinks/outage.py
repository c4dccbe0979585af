"""Store outages of the streaming jobs' sinks: which errors mean "the store is unreachable", and the state of
each store in this process, shown once per outage in the log and continuously in metrics.

An outage starts at the first write that finds a store unreachable (connection refused, lost or timed out;
the server shutting down or starting up) and ends at the next write to it that gets an answer. The job
waits an outage out (``sink.retry.with_retries``); the log gets one warning when it starts and one line
with its duration when it ends, however many retries it took. Each process keeps its own state: the Spark
driver's (exported on the job's metrics port) and, for ``tick_data`` rows written by the executors, each
executor Python worker's (in that executor's log).
"""

from __future__ import annotations

import threading
import time
from typing import Final, Literal

import psycopg2
import redis
import structlog
import urllib3.exceptions
from influxdb_client.rest import ApiException
from prometheus_client import Counter, Gauge

log = structlog.get_logger(__name__)

Store = Literal["postgres", "redis", "influx"]
STORES: Final[tuple[Store, ...]] = ("postgres", "redis", "influx")

STORE_UP: Final = Gauge(
    "tickflow_store_up",
    "1 while the job's writes reach the store, 0 during an outage (a write found it unreachable and the "
    "job is waiting for it with back-off).",
    ["store"],
)
STORE_OUTAGES: Final = Counter(
    "tickflow_store_outages", "Outages of a store seen by the job's writes (each counted once).", ["store"]
)
STORE_DOWN_SECONDS: Final = Counter(
    "tickflow_store_outage_seconds",
    "Time the job's writes waited for a store during outages that ended (s).",
    ["store"],
)
for _store in STORES:
    STORE_UP.labels(_store).set(1)
    STORE_OUTAGES.labels(_store)
    STORE_DOWN_SECONDS.labels(_store)

_PG_CONNECTION_CLASSES: Final = ("08", "57P")
"""SQLSTATE prefixes of a lost or refused connection: connection exceptions, and the server shutting down
(57P01/57P02) or not yet accepting connections (57P03)."""
_HTTP_UNAVAILABLE: Final = frozenset({502, 503, 504})
_URLLIB3_UNREACHABLE: Final = (
    urllib3.exceptions.TimeoutError,  # incl. NewConnectionError (refused) and read timeouts
    urllib3.exceptions.ProtocolError,  # connection reset or closed mid-request
    urllib3.exceptions.MaxRetryError,
)


def unreachable_store(error: BaseException | None) -> Store | None:
    """The store ``error`` shows to be unreachable, or None when it is no such error (the store answered,
    e.g. it refused the data or a statement timed out, or the error is not a store's)."""
    if isinstance(error, psycopg2.InterfaceError):  # the connection is already closed
        return "postgres"
    if isinstance(error, psycopg2.OperationalError):
        code = error.pgcode  # None when libpq could not connect or lost the connection
        return "postgres" if code is None or code.startswith(_PG_CONNECTION_CLASSES) else None
    if isinstance(error, redis.ConnectionError | redis.TimeoutError):  # incl. BusyLoadingError
        return "redis"
    if isinstance(error, _URLLIB3_UNREACHABLE):
        return "influx"
    if isinstance(error, ApiException) and error.status in _HTTP_UNAVAILABLE:
        return "influx"
    return None


class Outages:
    """The outage state of every store in this process (thread-safe: both queries' batches use it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: dict[str, float] = {}

    def down(self, store: Store, sink: str, error: BaseException) -> None:
        """Record that ``sink`` found ``store`` unreachable; logs and counts only the first time of an
        outage."""
        with self._lock:
            started = store not in self._since
            if started:
                self._since[store] = time.monotonic()
        if started:
            STORE_UP.labels(store).set(0)
            STORE_OUTAGES.labels(store).inc()
            log.warning("store unreachable, waiting for it", store=store, sink=sink, error=repr(error))

    def up(self, store: Store) -> None:
        """Record that ``store`` answered; ends its outage (one log line with the duration) if it had one."""
        with self._lock:
            since = self._since.pop(store, None)
        if since is not None:
            down_s = time.monotonic() - since
            STORE_UP.labels(store).set(1)
            STORE_DOWN_SECONDS.labels(store).inc(down_s)
            log.warning("store reachable again", store=store, down_s=round(down_s, 1))

    def is_down(self, store: Store) -> bool:
        """True during an outage of ``store``."""
        with self._lock:
            return store in self._since


OUTAGES: Final = Outages()
"""This process's store outages."""
