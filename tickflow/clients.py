"""Connect and read timeouts of every store client, from ``Settings.store_connect_timeout_s`` and
``Settings.store_read_timeout_s``: a store that drops packets fails a call within a known time instead of
hanging a job.

- PostgreSQL (psycopg2/libpq): ``connect_timeout``, ``statement_timeout``, TCP keepalives and
  ``tcp_user_timeout`` (unacknowledged writes).
- Redis (redis-py, sync and asyncio): ``socket_connect_timeout``, ``socket_timeout``, keepalive.
- Kafka admin (librdkafka): socket connection set-up and request timeouts.

HTTP clients (httpx) set their own timeouts (``alert_timeout_s``, ``dashboard_api_timeout_s``, the REST
back-fill's 10 s); the InfluxDB client takes ``store_read_timeout_s``.
"""

from __future__ import annotations

import math
from typing import Any

from tickflow.settings import Settings


def postgres_dsn(settings: Settings, statement_timeout: bool = True) -> str:
    """``settings.postgres_dsn`` with the timeouts added (libpq key=value form; the DSN's own values for
    the same keys are replaced, its ``options`` kept). ``statement_timeout=False`` leaves statements
    unbounded (migrations).

    Raises:
        psycopg2.ProgrammingError: the DSN cannot be parsed.
    """
    from psycopg2.extensions import make_dsn, parse_dsn

    read_ms = int(settings.store_read_timeout_s * 1000)
    kwargs: dict[str, Any] = {
        "connect_timeout": max(2, math.ceil(settings.store_connect_timeout_s)),  # libpq: whole seconds, >= 2
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": read_ms,  # unacknowledged writes to a silent server fail after this
    }
    if statement_timeout:
        own = parse_dsn(settings.postgres_dsn).get("options")
        kwargs["options"] = " ".join(filter(None, (own, f"-c statement_timeout={read_ms}")))
    return make_dsn(settings.postgres_dsn, **kwargs)


def redis_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``Redis.from_url`` (redis-py, sync or asyncio) besides the URL."""
    return {
        "socket_connect_timeout": settings.store_connect_timeout_s,
        "socket_timeout": settings.store_read_timeout_s,
        "socket_keepalive": True,
    }


def kafka_admin_config(settings: Settings) -> dict[str, Any]:
    """librdkafka configuration of the clients that only ask the cluster (an ``AdminClient``, the consumer of
    ``tickflow.lag.GroupLag``): bootstrap servers and timeouts."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "socket.connection.setup.timeout.ms": int(settings.store_connect_timeout_s * 1000),
        "socket.timeout.ms": int(settings.store_read_timeout_s * 1000),
    }
