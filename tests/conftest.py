"""Shared fixtures: real services on free ports in a throw-away state dir, fresh databases and topics.

Fixtures (use these; do not start services yourself):
- ``shared_data``: ``Path`` of ``../shared/data`` (skips the test when absent).
- ``stack``: session-wide ``Settings`` of a running local stack (broker, PostgreSQL, Redis, VictoriaMetrics)
  on free loopback ports; stopped at the end of the session.
- ``fresh_db``: ``Settings`` pointing at a new, migrated database (dropped afterwards).
- ``fresh_topics``: ``Settings`` with uniquely named topics, created on the broker.
- ``fresh_env``: both of the above.
- ``spark``: the one local SparkSession of the test session.
- ``coinbase_bars``: reference bars (``tests.reference_bars``) of the real Coinbase hour by interval name.

Helpers for package-scoped variants: ``database`` (a migrated database of its own), ``with_topic_prefix``
and ``isolated_settings`` (database, created topics and a Redis database of a test package); the stack
helpers themselves (``free_port``, ``stack_settings``, ``private_stack``...) are ``infra.local.sandbox``'s,
shared with the benchmarks.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import pandas as pd
import psycopg2
import pytest
from psycopg2 import sql
from pyspark.sql import SparkSession

from infra.db.migrate import migrate
from infra.local.sandbox import TOPIC_FIELDS, private_stack, with_topic_prefix
from infra.topics import create_topics
from tests.reference_bars import load_trades_csv, reference_bars
from tickflow.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
COINBASE_HOUR_CSV: Final = "coinbase_btcusd_trades_2023-09-05T16.csv"
"""The real Coinbase BTC-USD trades of 2023-09-05 16:00-17:00 UTC, in ``shared_data``."""
TEST_JVM_OPTIONS: Final = "-XX:TieredStopAtLevel=1"
"""JVM options of the tests' Spark drivers (in-process and every `tickflow stream ...` a test starts): the
tests push little data through many short-lived JVMs, and the C1 compiler alone spends less of the two
cores on compiling (`stream bars --available-now` of the Coinbase hour: 23-29 s instead of 33 s). The
benchmarks and the product keep the JVM's default (both compilers: the better code for long runs)."""
BAR_INTERVALS: Final = {"1m": 1, "5m": 5, "15m": 15}
"""Interval name -> minutes of the bars the tests build."""


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real market data not found at {SHARED_DATA} (see shared/data/README.md)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    for name in list(os.environ):
        if name.startswith("TICKFLOW_"):
            os.environ.pop(name)
    with private_stack(spark_java_options=TEST_JVM_OPTIONS) as settings:
        yield settings


@contextmanager
def database(stack: Settings, name: str) -> Iterator[Settings]:
    """``stack`` pointing at a new, migrated PostgreSQL database ``name``; dropped (connections and all)
    on exit."""
    _as_admin(stack, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    settings = stack.model_copy(update={"postgres_dsn": stack.postgres_dsn.rsplit("/", 1)[0] + f"/{name}"})
    try:
        migrate(settings.postgres_dsn)
        yield settings
    finally:  # a connection of its own: the server may have been restarted meanwhile (tests/faults)
        _as_admin(stack, sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _as_admin(stack: Settings, statement: sql.Composable) -> None:
    """Run ``statement`` outside a transaction on ``stack``'s database, on a connection of its own."""
    admin = psycopg2.connect(stack.postgres_dsn)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(statement)
    finally:
        admin.close()


@contextmanager
def isolated_settings(stack: Settings, label: str, redis_db: int, **overrides: object) -> Iterator[Settings]:
    """Settings of one test package: a new migrated database ``t_<label>_<hex>`` (dropped on exit), new
    topics ``<label><hex>_*`` (created after ``overrides`` apply, so a ``kafka_partitions`` override
    counts), the Redis database ``redis_db`` of ``stack``'s server, and ``overrides``."""
    token = uuid.uuid4().hex[:10]
    with database(stack, f"t_{label}_{token}") as db:
        redis_url = stack.redis_url.rsplit("/", 1)[0] + f"/{redis_db}"
        settings = with_topic_prefix(db, f"{label}{token[:6]}_").model_copy(
            update={"redis_url": redis_url, **overrides}
        )
        create_topics(settings)
        yield settings


@pytest.fixture
def fresh_db(stack: Settings) -> Iterator[Settings]:
    with database(stack, f"t_{uuid.uuid4().hex[:12]}") as settings:
        yield settings


@pytest.fixture
def fresh_topics(stack: Settings) -> Settings:
    settings = with_topic_prefix(stack, f"t{uuid.uuid4().hex[:8]}_")
    create_topics(settings)
    return settings


@pytest.fixture
def fresh_env(fresh_db: Settings, fresh_topics: Settings) -> Settings:
    """Settings with a fresh database and fresh topics, and a checkpoint dir of its own."""
    update = {f: getattr(fresh_topics, f) for f in TOPIC_FIELDS}
    update["checkpoint_dir"] = fresh_db.state_dir / "checkpoints" / uuid.uuid4().hex[:8]
    return fresh_db.model_copy(update=update)


@pytest.fixture(scope="session")
def coinbase_bars(shared_data: Path) -> dict[str, pd.DataFrame]:
    """Reference bars of the Coinbase BTC-USD hour by interval name (``1m``, ``5m``, ``15m``)."""
    trades = load_trades_csv(shared_data / COINBASE_HOUR_CSV)
    return {name: reference_bars(trades, minutes) for name, minutes in BAR_INTERVALS.items()}


SERVICE_FIXTURES = frozenset({"stack", "cluster_stack"})
"""Fixtures that start real services (Kafka, PostgreSQL, Redis, VictoriaMetrics, a cluster)."""
SERVICE_MARKERS = frozenset({"spark", "browser", "faults"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a service ``services`` (it uses a service fixture, directly or through
    another fixture, or one of ``SERVICE_MARKERS``), so ``pytest -m "not services"`` is the fast unit tier.
    Run the end-to-end tests last: they write the same real-data series (BTC-USD) to the shared
    VictoriaMetrics as the stage tests, whose exports must see only their own points."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        markers = {marker.name for marker in item.iter_markers()}
        if fixtures & SERVICE_FIXTURES or markers & SERVICE_MARKERS:
            item.add_marker(pytest.mark.services)
    items.sort(key=lambda item: item.nodeid.startswith("tests/e2e/"))


@pytest.fixture(scope="session")
def spark(stack: Settings) -> Iterator[SparkSession]:
    """One local SparkSession for every in-process Spark test, configured like the jobs' (2 cores, few
    shuffle partitions, UTC), with the bar job's progress metrics installed."""
    from streaming_jobs.bars.metrics import install_progress_metrics
    from streaming_jobs.spark_session import build_spark

    session = build_spark(stack, "tickflow-tests")
    install_progress_metrics(session)
    yield session
    session.stop()
