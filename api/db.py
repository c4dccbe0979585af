"""PostgreSQL access for the API: a psycopg2 ``ThreadedConnectionPool`` driven from async code.

Queries run on worker threads (``anyio.to_thread``); a semaphore sized like the pool makes callers wait
for a free connection instead of failing with ``PoolError``. Connections are in autocommit mode with a
statement timeout and the UTC time zone, and return ``numeric`` columns as ``float``.
"""

from __future__ import annotations

from typing import Any

import anyio
import psycopg2
import psycopg2.extensions
import psycopg2.pool
from psycopg2 import sql

Query = str | sql.Composable

_DECIMAL_AS_FLOAT = psycopg2.extensions.new_type(
    psycopg2.extensions.DECIMAL.values,
    "TICKFLOW_DECIMAL_AS_FLOAT",
    lambda value, _cursor: None if value is None else float(value),
)


class _ApiConnection(psycopg2.extensions.connection):
    """A connection in autocommit mode that reads ``numeric`` as ``float``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.autocommit = True
        psycopg2.extensions.register_type(_DECIMAL_AS_FLOAT, self)


class Database:
    """A bounded pool of read connections to the bar store at ``dsn`` (connect timeout and keepalives come
    with it: ``tickflow.clients.postgres_dsn``; statements get ``statement_timeout_ms``)."""

    def __init__(self, dsn: str, pool_size: int, statement_timeout_ms: int) -> None:
        self._pool = psycopg2.pool.ThreadedConnectionPool(
            0,
            pool_size,
            dsn,
            connection_factory=_ApiConnection,
            application_name="tickflow-api",
            options=f"-c statement_timeout={statement_timeout_ms} -c TimeZone=UTC",
        )
        self._slots = anyio.Semaphore(pool_size)

    async def fetch(self, query: Query, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows of a parameterised query as dicts keyed by column name.

        Raises:
            psycopg2.OperationalError: the server is unreachable or the statement timed out.
            psycopg2.Error: any other database error.
        """
        async with self._slots:
            return await anyio.to_thread.run_sync(self._fetch, query, params)

    def _fetch(self, query: Query, params: dict[str, Any] | None, retry: bool = True) -> list[dict[str, Any]]:
        conn = self._pool.getconn()
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                columns = [d.name for d in cur.description or ()]
                rows = cur.fetchall() if cur.description else []
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            broken = bool(conn.closed)
            self._pool.putconn(conn, close=broken)
            if broken and retry:  # the server dropped this pooled connection (restart): retry on a new one
                return self._fetch(query, params, retry=False)
            raise
        except BaseException:
            self._pool.putconn(conn)
            raise
        self._pool.putconn(conn)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.closeall()
