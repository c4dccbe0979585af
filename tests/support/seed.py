"""Seeding PostgreSQL the way the pipeline writes it, for the API, dashboard, ML and indicator tests.

- ``transaction`` / ``insert_frame``: rows of a DataFrame into a table, in one committed transaction.
- ``indicator_rows``: the ``indicators`` rows of one series' bars (the pipeline's own formulas).
- ``bar_model``: a final ``OHLCVBar`` of a reference bar row (``tests.reference_bars``), as the bar job
  publishes it to Redis.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pandas as pd
import psycopg2
import psycopg2.extensions
import psycopg2.extras

from streaming_jobs.indicators.formulas import compute_indicators
from tickflow.schemas import BAR_FIELDS, OHLCVBar


@contextmanager
def transaction(dsn: str) -> Iterator[psycopg2.extensions.cursor]:
    """A cursor of a new connection to ``dsn``: committed on exit (rolled back on an error), then closed."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def insert_frame(
    cur: psycopg2.extensions.cursor, table: str, frame: pd.DataFrame, on_conflict: str = ""
) -> None:
    """INSERT every row of ``frame`` into ``table`` (its columns named as the frame's).

    NaN/NaT become NULL and dict values JSON; ``on_conflict`` is appended to the statement as it is
    (e.g. ``"ON CONFLICT (symbol, interval, window_start) DO UPDATE SET is_final = EXCLUDED.is_final"``).
    """
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    rows = [tuple(json.dumps(v) if isinstance(v, dict) else v for v in r.values()) for r in records]
    columns = ", ".join(frame.columns)
    psycopg2.extras.execute_values(
        cur, f"INSERT INTO {table} ({columns}) VALUES %s {on_conflict}", rows, page_size=1000
    )


def indicator_rows(bars: pd.DataFrame) -> pd.DataFrame:
    """Rows of the ``indicators`` table for the bars of one series (oldest first, index kept): ``symbol``,
    ``interval``, ``window_start``, ``close`` and ``tickflow.schemas.INDICATOR_FIELDS`` from
    ``compute_indicators`` (NaN while an indicator warms up)."""
    values = compute_indicators(bars["close"])
    return pd.concat([bars[["symbol", "interval", "window_start", "close"]], values], axis=1)


def bar_model(row: pd.Series, updated_at: datetime) -> OHLCVBar:
    """The final ``OHLCVBar`` of a reference bar ``row`` (``tests.reference_bars`` columns), revised at
    ``updated_at`` (UTC)."""
    values = {field: row[field] for field in BAR_FIELDS if field in row.index}
    return OHLCVBar(**values, is_final=True, updated_at=updated_at)
