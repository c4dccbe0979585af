"""Warm-up of a key's history from the stored bars (PostgreSQL ``ohlcv``) when the job has no state for it:
a first start on a database that already holds bars, or a new checkpoint. Without it the first indicators
of a restarted job would be computed from a short history and jump."""

from __future__ import annotations

import pandas as pd
import psycopg2

from streaming_jobs.indicators.state import HISTORY_DTYPES, HISTORY_FIELDS, empty_history
from tickflow.micros import from_micros

_QUERY = (
    "SELECT (extract(epoch FROM window_start) * 1000000)::bigint, high, low, close, volume FROM ohlcv"
    " WHERE symbol = %s AND interval = %s AND window_start < %s"
    " ORDER BY window_start DESC LIMIT %s"
)


def load_history(dsn: str, symbol: str, interval: str, before_us: int, limit: int) -> pd.DataFrame:
    """The last ``limit`` stored bars of ``symbol``/``interval`` that start before ``before_us`` (µs since
    the epoch, UTC), oldest first, as a history (``HISTORY_FIELDS``); empty when none are stored.

    Raises:
        psycopg2.Error: the database is unreachable or has no ``ohlcv`` table.
    """
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        before = from_micros(before_us)
        cur.execute(_QUERY, (symbol, interval, before, limit))
        rows = cur.fetchall()
    conn.close()
    if not rows:
        return empty_history()
    history = pd.DataFrame(rows[::-1], columns=list(HISTORY_FIELDS))
    return history.astype(HISTORY_DTYPES)
