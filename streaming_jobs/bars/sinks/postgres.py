"""PostgreSQL writers: idempotent bar upserts with finalisation, and raw ticks into ``tick_data``."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

import psycopg2
import psycopg2.extensions
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg2.extras import execute_values

from streaming_jobs.bars.sinks.retry import Refused
from tickflow.micros import EPOCH
from tickflow.schemas import BAR_FIELDS, OHLCVBar

_COLUMNS: Final = ", ".join(BAR_FIELDS)
_UPDATES: Final = ", ".join(
    f"{name} = EXCLUDED.{name}"
    for name in BAR_FIELDS
    if name not in ("symbol", "interval", "window_start", "is_final")
)
UPSERT_BARS: Final = f"""
INSERT INTO ohlcv ({_COLUMNS}) VALUES %s
ON CONFLICT (symbol, interval, window_start) DO UPDATE
SET {_UPDATES}, is_final = ohlcv.is_final OR EXCLUDED.is_final
"""
FINALISE_BARS: Final = f"""
UPDATE ohlcv SET is_final = true, updated_at = now()
WHERE NOT is_final AND window_end <= %(watermark)s AND window_start >= %(since)s
RETURNING {_COLUMNS}
"""

TICK_DATA_COLUMNS: Final[tuple[str, ...]] = (
    "symbol",
    "exchange",
    "trade_id",
    "event_time",
    "receipt_time",
    "price",
    "size",
    "side",
    "source",
)
"""Columns of ``tick_data`` written from the stream, in the order of the Arrow batches."""
_CREATE_TEMP_TICKS: Final = "CREATE TEMP TABLE _ticks (LIKE tick_data INCLUDING DEFAULTS) ON COMMIT DROP"
_COPY_TICKS: Final = f"COPY _ticks ({', '.join(TICK_DATA_COLUMNS)}) FROM STDIN WITH (FORMAT csv)"
_MERGE_TICKS: Final = "INSERT INTO tick_data SELECT * FROM _ticks ON CONFLICT DO NOTHING"


class PostgresBarSink:
    """Upserts bars into ``ohlcv`` and marks bars final, one transaction per micro-batch.

    A replayed batch writes the same rows again (``ON CONFLICT DO UPDATE`` with identical values), so it
    changes nothing; ``is_final`` never goes back from true to false.
    """

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: psycopg2.extensions.connection | None = None

    def write(
        self, bars: Sequence[OHLCVBar], watermark: datetime | None, since: datetime | None
    ) -> list[OHLCVBar]:
        """Upsert ``bars``; then, if ``watermark`` is known, mark every stored bar with ``window_end <=
        watermark`` (and ``window_start >= since``, which bounds the scan) final.

        Returns:
            The bars that this call turned final and that were not in ``bars`` (their final revision).

        Raises:
            psycopg2.Error: the database refused or is unreachable (the connection is dropped).
        """
        conn = self._connection()
        try:
            with conn, conn.cursor() as cur:
                if bars:
                    rows = [tuple(getattr(bar, name) for name in BAR_FIELDS) for bar in bars]
                    execute_values(cur, UPSERT_BARS, rows, page_size=1000)
                if watermark is None:
                    return []
                cur.execute(FINALISE_BARS, {"watermark": watermark, "since": since or EPOCH})
                return [OHLCVBar(**dict(zip(BAR_FIELDS, row, strict=True))) for row in cur.fetchall()]
        except psycopg2.Error:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> psycopg2.extensions.connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(self._dsn)
        return self._conn


def ping(dsn: str) -> None:
    """Connect to the database and run ``SELECT 1``.

    Raises:
        psycopg2.Error: the database is unreachable or failed.
    """
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        conn.close()


def finalisation_lower_bound(previous: datetime | None, longest: timedelta) -> datetime | None:
    """Earliest ``window_start`` a bar not yet final can have when the watermark was ``previous``: every
    bar ending at or before ``previous`` was finalised then. ``None`` (scan all) when unknown."""
    return None if previous is None else previous - longest


def insert_ticks(dsn: str, batch: pa.RecordBatch) -> int:
    """Insert ``batch`` (columns ``TICK_DATA_COLUMNS``; timestamps UTC) into ``tick_data``; rows already there
    (same primary key) are skipped. Returns the number of rows offered.

    Raises:
        Refused: the database refused the rows (a data or integrity error, e.g. a constraint).
        psycopg2.Error: the database is unreachable or failed otherwise.
    """
    if batch.num_rows == 0:
        return 0
    buffer = io.BytesIO()
    pa_csv.write_csv(batch, buffer, pa_csv.WriteOptions(include_header=False))
    buffer.seek(0)
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(_CREATE_TEMP_TICKS)
            cur.copy_expert(_COPY_TICKS, buffer)
            cur.execute(_MERGE_TICKS)
    except (psycopg2.DataError, psycopg2.IntegrityError) as exc:
        raise Refused((exc.pgerror or str(exc)).strip().splitlines()[0]) from exc
    finally:
        conn.close()
    return batch.num_rows
