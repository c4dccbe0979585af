"""Throw-away local stacks for tests and benchmarks: settings on free loopback ports under a new state dir.

``private_stack()`` starts a broker, PostgreSQL, Redis and VictoriaMetrics of its own (``infra.local.stack``)
and removes everything on exit; ``stack_settings`` only makes the settings; ``with_topic_prefix`` renames
every topic so runs sharing a broker do not meet.
"""

from __future__ import annotations

import random
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from infra.local import stack as local_stack
from tickflow.settings import Settings

TOPIC_FIELDS: Final = ("topic_ticks", "topic_dlq", "topic_bars_prefix", "topic_anomalies")
"""The ``Settings`` fields that name Kafka topics (the bar topics by their common prefix)."""


PORT_RANGE: Final = range(20000, 29000)
"""Where ``free_port`` picks: below Linux's ephemeral range (32768-60999 by default), so the source port of
an outgoing connection (brokers connecting to each other as they start) cannot take a port before its server
binds it, and clear of the stack's default ports (8000-19092, 29092-29097)."""
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 in ``PORT_RANGE`` that was free a moment ago and that this process has not
    handed out before.

    Raises:
        RuntimeError: no such port after 1,000 tries.
    """
    for _ in range(1000):
        port = random.choice(PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {PORT_RANGE} on 127.0.0.1")


def make_state_dir() -> Path:
    """A temp dir the ``postgres`` user can traverse (pytest's tmp dirs are root-only)."""
    path = Path(tempfile.mkdtemp(prefix="tickflow-test-"))
    path.chmod(0o755)
    return path


def app_ports() -> dict[str, object]:
    """Settings values putting every port Tickflow's own processes listen on (API, dashboard, metrics of
    the producer and the jobs) on a free port; ``api_url`` follows ``api_port``."""
    api_port = free_port()
    return {
        "api_port": api_port,
        "api_url": f"http://127.0.0.1:{api_port}",
        "dashboard_port": free_port(),
        "producer_metrics_port": free_port(),
        "bars_metrics_port": free_port(),
        "indicators_metrics_port": free_port(),
    }


def stack_settings(state_dir: Path, **overrides: object) -> Settings:
    """Settings of a local stack under ``state_dir``, its services and Tickflow's processes on free ports
    (env and .env ignored)."""
    values: dict[str, object] = {
        "state_dir": state_dir,
        "checkpoint_dir": state_dir / "checkpoints",
        "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
        "kafka_controller_port": free_port(),
        "postgres_dsn": f"postgresql://postgres@127.0.0.1:{free_port()}/tickflow",
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "influx_url": f"http://127.0.0.1:{free_port()}",
        **app_ports(),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextmanager
def private_stack(**overrides: object) -> Iterator[Settings]:
    """A local stack (broker, PostgreSQL, Redis, VictoriaMetrics) of its own under a new state dir on free
    ports (``stack_settings`` with ``overrides``); stopped, and its state dir removed, on exit."""
    state_dir = make_state_dir()
    settings = stack_settings(state_dir, **overrides)
    try:
        local_stack.up(settings)
        yield settings
    finally:
        local_stack.down(settings)
        shutil.rmtree(state_dir, ignore_errors=True)


def with_topic_prefix(settings: Settings, prefix: str) -> Settings:
    """``settings`` with every topic name (``TOPIC_FIELDS``) prefixed by ``prefix``; creates nothing."""
    return settings.model_copy(update={f: prefix + getattr(settings, f) for f in TOPIC_FIELDS})
