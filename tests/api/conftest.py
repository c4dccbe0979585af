"""Fixtures of the API tests: a database, topics and Redis db of their own, seeded from the real Coinbase
hour, and a real API process (``tickflow api``) with auth on and short WebSocket timings."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local.servers import ApiServer
from tests.api.seed import Seeded, seed
from tests.conftest import isolated_settings
from tickflow.settings import Settings

API_KEY = f"test-{uuid.uuid4().hex}"
REDIS_DB = 5  # a Redis database of the API tests (flushed when seeding)


@pytest.fixture(scope="package")
def api_settings(stack: Settings) -> Iterator[Settings]:
    """Settings with a fresh migrated database, fresh topics, Redis db 5, auth on, short WS timings."""
    with isolated_settings(
        stack,
        "api",
        REDIS_DB,
        kafka_partitions=3,
        api_auth=True,
        api_keys=["another-key", API_KEY],
        api_ws_queue_size=100,
        api_ws_slow_grace_s=1.0,
        api_ws_heartbeat_s=1.0,
        api_ws_max_subscriptions=6,
        api_socket_send_buffer=32768,
    ) as settings:
        yield settings


@pytest.fixture(scope="package")
def seeded(api_settings: Settings, shared_data: Path) -> Seeded:
    return seed(api_settings, shared_data)


@pytest.fixture(scope="package")
def api_server(api_settings: Settings, seeded: Seeded) -> Iterator[ApiServer]:
    server = ApiServer(api_settings, api_settings.state_dir / f"api-{uuid.uuid4().hex[:6]}.log").start()
    yield server
    server.stop()


@pytest.fixture
def auth() -> dict[str, str]:
    return {"X-API-Key": API_KEY}
