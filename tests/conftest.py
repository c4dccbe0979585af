"""Shared fixtures: real services on free ports in a throw-away state dir, fresh databases and topics.

Fixtures (use these; do not start services yourself):
- ``shared_data``: ``Path`` of ``../shared/data`` (skips the test when absent).
- ``stack``: session-wide ``Settings`` of a running local stack (broker, PostgreSQL, Redis, VictoriaMetrics)
  on free loopback ports; stopped at the end of the session.
- ``fresh_db``: ``Settings`` pointing at a new, migrated database (dropped afterwards).
- ``fresh_topics``: ``Settings`` with uniquely named topics, created on the broker.
- ``fresh_env``: both of the above.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

from infra.db.migrate import migrate
from infra.local import stack as local_stack
from infra.topics import create_topics
from tickflow.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_state_dir() -> Path:
    """A temp dir the ``postgres`` user can traverse (pytest's tmp dirs are root-only)."""
    path = Path(tempfile.mkdtemp(prefix="tickflow-test-"))
    path.chmod(0o755)
    return path


def stack_settings(state_dir: Path, **overrides: object) -> Settings:
    """Settings of a local stack under ``state_dir`` on free ports (env and .env ignored)."""
    values: dict[str, object] = {
        "state_dir": state_dir,
        "checkpoint_dir": state_dir / "checkpoints",
        "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
        "postgres_dsn": f"postgresql://postgres@127.0.0.1:{free_port()}/tickflow",
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "influx_url": f"http://127.0.0.1:{free_port()}",
        "api_port": free_port(),
        "dashboard_port": free_port(),
    }
    values["api_url"] = f"http://127.0.0.1:{values['api_port']}"
    values.update(overrides)
    return Settings(_env_file=None, **values)


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
    state_dir = make_state_dir()
    settings = stack_settings(state_dir)
    try:
        local_stack.up(settings)
        yield settings
    finally:
        local_stack.down(settings)
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def fresh_db(stack: Settings) -> Iterator[Settings]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(stack.postgres_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    settings = stack.model_copy(update={"postgres_dsn": stack.postgres_dsn.rsplit("/", 1)[0] + f"/{name}"})
    migrate(settings.postgres_dsn)
    yield settings
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    admin.close()


@pytest.fixture
def fresh_topics(stack: Settings) -> Settings:
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    settings = stack.model_copy(
        update={
            "topic_ticks": prefix + stack.topic_ticks,
            "topic_dlq": prefix + stack.topic_dlq,
            "topic_bars_prefix": prefix + stack.topic_bars_prefix,
            "topic_anomalies": prefix + stack.topic_anomalies,
        }
    )
    create_topics(settings)
    return settings


@pytest.fixture
def fresh_env(fresh_db: Settings, fresh_topics: Settings) -> Settings:
    """Settings with a fresh database and fresh topics, and a checkpoint dir of its own."""
    topic_fields = ("topic_ticks", "topic_dlq", "topic_bars_prefix", "topic_anomalies")
    update = {f: getattr(fresh_topics, f) for f in topic_fields}
    update["checkpoint_dir"] = fresh_db.state_dir / "checkpoints" / uuid.uuid4().hex[:8]
    return fresh_db.model_copy(update=update)
