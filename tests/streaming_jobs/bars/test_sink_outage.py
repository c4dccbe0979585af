"""The sinks' retry policy (``streaming_jobs.bars.sinks.retry.with_retries``) against real stores: an
unreachable store is waited for and logged once per outage, a store that answers with an error gets a few
tries, a refused write none."""

from __future__ import annotations

import itertools
import socket
import threading
import time

import psycopg2
import pytest
import redis

from streaming_jobs.bars.sinks.outage import STORE_DOWN_SECONDS, STORE_OUTAGES, STORE_UP, unreachable_store
from streaming_jobs.bars.sinks.retry import Refused, SinkRetries, with_retries
from tickflow.settings import Settings


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def quick(stack: Settings, **overrides: object) -> Settings:
    return stack.model_copy(update={"sink_retry_backoff_s": 0.01, "sink_retry_attempts": 3, **overrides})


def test_an_outage_is_waited_out_and_logged_once_each_way(
    stack: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    down = redis.Redis(port=closed_port(), socket_connect_timeout=1, retry_on_error=[])
    up = redis.Redis.from_url(stack.redis_url)
    calls = itertools.count(1)

    def ping() -> bool:  # the first 5 tries find the store unreachable, then it is back
        return (down if next(calls) <= 5 else up).ping()

    outages = STORE_OUTAGES.labels("redis")._value.get()
    waited = STORE_DOWN_SECONDS.labels("redis")._value.get()
    assert with_retries(quick(stack), "redis", ping) is True
    assert next(calls) == 7, "not retried until the store answered (more tries than sink_retry_attempts)"
    out = capsys.readouterr().out
    assert out.count("store unreachable, waiting for it") == 1
    assert out.count("store reachable again") == 1
    assert "sink write failed, retrying" not in out
    assert STORE_UP.labels("redis")._value.get() == 1
    assert STORE_OUTAGES.labels("redis")._value.get() == outages + 1
    assert STORE_DOWN_SECONDS.labels("redis")._value.get() > waited


def test_an_outage_longer_than_the_bound_fails_the_write(
    stack: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{closed_port()}/tickflow?connect_timeout=2"
    with pytest.raises(psycopg2.OperationalError) as raised:
        with_retries(quick(stack, sink_outage_max_s=0.5), "postgres", psycopg2.connect, dsn)
    assert unreachable_store(raised.value) == "postgres"
    assert STORE_UP.labels("postgres")._value.get() == 0
    out = capsys.readouterr().out
    assert out.count("store unreachable, waiting for it") == 1
    assert "giving up" in out

    dsns = iter([dsn, stack.postgres_dsn])  # the next write finds it unreachable once more, then it is back
    with_retries(quick(stack), "postgres", lambda: psycopg2.connect(next(dsns)).close())
    out = capsys.readouterr().out
    assert (out.count("store unreachable"), out.count("store reachable again")) == (0, 1), "not one outage"
    assert STORE_UP.labels("postgres")._value.get() == 1


def test_an_error_of_a_reachable_store_is_tried_sink_retry_attempts_times(stack: Settings) -> None:
    calls = itertools.count(1)

    def too_slow() -> None:
        next(calls)
        with psycopg2.connect(stack.postgres_dsn, options="-c statement_timeout=10") as conn:
            conn.cursor().execute("SELECT pg_sleep(1)")

    with pytest.raises(psycopg2.errors.QueryCanceled) as raised:
        with_retries(quick(stack), "postgres", too_slow)
    assert unreachable_store(raised.value) is None
    assert next(calls) == 3 + 1


def test_a_refused_write_is_not_retried(stack: Settings) -> None:
    calls = itertools.count(1)

    def refuse() -> None:
        next(calls)
        raise Refused("the row violates a constraint")

    with pytest.raises(Refused):
        with_retries(quick(stack), "postgres", refuse)
    assert next(calls) == 2


def test_a_stopping_job_gives_up_its_waiting_write(
    stack: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    stopping = threading.Event()
    calls = itertools.count(1)
    dsn = f"postgresql://postgres@127.0.0.1:{closed_port()}/tickflow?connect_timeout=2"

    def connect() -> None:  # refused at once
        if next(calls) == 1:
            threading.Timer(0.5, stopping.set).start()  # SIGTERM during the first back-off
        psycopg2.connect(dsn).close()

    retries = SinkRetries(quick(stack, sink_retry_backoff_s=60.0), stopping)  # every back-off 10 s (the cap)
    started = time.monotonic()
    with pytest.raises(psycopg2.OperationalError):
        retries("postgres", connect)  # the outage would be waited for up to sink_outage_max_s (1 h)
    waited_s = time.monotonic() - started
    assert waited_s < 10.0, f"the 10 s back-off was not cut short by the stop ({waited_s:.1f} s)"
    assert next(calls) == 2 + 1  # the try before the stop, and one after it
    out = capsys.readouterr().out
    assert out.count("sink write given up: the job is stopping") == 1
