"""Read bars and indicators from PostgreSQL/TimescaleDB into pandas, for training, notebooks and live use.

Typical notebook use::

    from ml.data import list_series, load_bars, load_indicators
    list_series()                                   # which symbol/interval pairs have bars
    bars = load_bars("BTC-USD", "1m", "2023-09-05T16:00Z", "2023-09-05T17:00Z")
    ind = load_indicators("BTC-USD", "1m", "2023-09-05T16:00Z", "2023-09-05T17:00Z")

Connection details come from ``Settings.postgres_dsn`` (env ``TICKFLOW_POSTGRES_DSN``). Every query is
parameterised (psycopg2). Prices are stored as NUMERIC and returned as float64; timestamps as
``datetime64[us, UTC]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Final

import pandas as pd
import psycopg2
import psycopg2.extensions

from tickflow.clients import postgres_dsn
from tickflow.intervals import Interval
from tickflow.schemas import BAR_FIELDS, BAR_FLOAT_FIELDS, INDICATOR_FIELDS
from tickflow.settings import Settings, get_settings

TimeLike = datetime | pd.Timestamp | str | None

BAR_COLUMNS: Final = tuple(
    name
    for name in BAR_FIELDS
    if name not in ("symbol", "interval", "first_trade_time", "last_trade_time", "updated_at")
)
"""Columns of :func:`load_bars`: ``window_start, window_end, open, high, low, close, volume, quote_volume,
vwap, trade_count, is_final`` (symbol and interval are its arguments, not columns)."""

_TIME_COLUMNS: Final = ("window_start", "window_end")


@contextmanager
def connect(settings: Settings | None = None) -> Iterator[psycopg2.extensions.connection]:
    """A psycopg2 connection to ``settings.postgres_dsn``, closed on exit.

    Raises:
        psycopg2.OperationalError: the database cannot be reached.
    """
    conn = psycopg2.connect(postgres_dsn(settings or get_settings()))
    try:
        yield conn
    finally:
        conn.close()


def _timestamp(value: TimeLike) -> datetime | None:
    """A timezone-aware UTC datetime; naive inputs are taken as UTC."""
    if value is None:
        return None
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def _query(
    conn: psycopg2.extensions.connection, sql: str, params: dict[str, object], columns: tuple[str, ...]
) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    for name in columns:
        if name in _TIME_COLUMNS:
            frame[name] = pd.to_datetime(frame[name], utc=True).astype("datetime64[us, UTC]")
    return frame


def _read(
    sql: str,
    params: dict[str, object],
    columns: tuple[str, ...],
    settings: Settings | None,
    conn: psycopg2.extensions.connection | None,
) -> pd.DataFrame:
    """:func:`_query` on ``conn``, or on a connection of its own to ``settings``' database."""
    if conn is not None:
        return _query(conn, sql, params, columns)
    with connect(settings) as own:
        return _query(own, sql, params, columns)


def _window_params(symbol: str, interval: str, start: TimeLike, end: TimeLike) -> dict[str, object]:
    return {
        "symbol": symbol,
        "interval": Interval.parse(interval).name,
        "start": _timestamp(start),
        "end": _timestamp(end),
    }


def load_bars(
    symbol: str,
    interval: str,
    start: TimeLike = None,
    end: TimeLike = None,
    settings: Settings | None = None,
    *,
    final_only: bool = True,
    limit: int | None = None,
    conn: psycopg2.extensions.connection | None = None,
) -> pd.DataFrame:
    """OHLCV/VWAP bars of ``symbol``/``interval`` with ``start <= window_start < end``, oldest first.

    Args:
        symbol: normalised symbol, e.g. ``"BTC-USD"``.
        interval: ``"1m"``, ``"5m"`` or ``"15m"`` (the legacy form ``"5min"`` also accepted).
        start, end: UTC bounds on ``window_start`` (datetime, pandas Timestamp or ISO string; naive = UTC);
            ``None`` leaves the side open.
        settings: where the database is (default: :func:`tickflow.settings.get_settings`).
        final_only: only bars whose window the watermark has closed (``is_final``); open bars may still
            be revised by late ticks, so training and evaluation use final bars only.
        limit: keep only the newest ``limit`` bars of the range (still returned oldest first).
        conn: an open connection to reuse instead of ``settings``.

    Returns:
        One row per stored bar, columns :data:`BAR_COLUMNS`: window bounds ``datetime64[us, UTC]``;
        open/high/low/close/vwap in quote currency, volume in base units, quote_volume in quote currency
        (float64); trade_count int64; is_final bool. Empty windows have no row.

    Raises:
        ValueError: unknown interval.
        psycopg2.Error: the query failed (e.g. database unreachable, schema not migrated).
    """
    params = _window_params(symbol, interval, start, end)
    params["limit"] = limit
    casts = ", ".join(f"{c}::float8" if c in BAR_FLOAT_FIELDS else c for c in BAR_COLUMNS)
    sql = (
        f"SELECT * FROM (SELECT {casts} FROM ohlcv"
        " WHERE symbol = %(symbol)s AND interval = %(interval)s"
        " AND (%(start)s::timestamptz IS NULL OR window_start >= %(start)s)"
        " AND (%(end)s::timestamptz IS NULL OR window_start < %(end)s)"
        + (" AND is_final" if final_only else "")
        + " ORDER BY window_start DESC LIMIT %(limit)s) AS newest ORDER BY window_start"
    )
    frame = _read(sql, params, BAR_COLUMNS, settings, conn)
    return frame.astype({"trade_count": "int64", "is_final": "bool"})


def load_indicators(
    symbol: str,
    interval: str,
    start: TimeLike = None,
    end: TimeLike = None,
    settings: Settings | None = None,
    *,
    conn: psycopg2.extensions.connection | None = None,
) -> pd.DataFrame:
    """Indicator rows of ``symbol``/``interval`` with ``start <= window_start < end``, oldest first.

    The row of a window holds the indicators computed from the closes up to and including that window
    (SMA/EMA/MACD/Bollinger in quote currency, RSI in 0..100, %B and bandwidth unitless); a column is NaN
    until its look-back is filled. Arguments as in :func:`load_bars`.

    Returns:
        Columns ``window_start`` (``datetime64[us, UTC]``) and :data:`INDICATOR_FIELDS` (float64).

    Raises:
        ValueError: unknown interval.
        psycopg2.Error: the query failed.
    """
    columns = ("window_start", *INDICATOR_FIELDS)
    sql = (
        f"SELECT {', '.join(columns)} FROM indicators"
        " WHERE symbol = %(symbol)s AND interval = %(interval)s"
        " AND (%(start)s::timestamptz IS NULL OR window_start >= %(start)s)"
        " AND (%(end)s::timestamptz IS NULL OR window_start < %(end)s)"
        " ORDER BY window_start"
    )
    params = _window_params(symbol, interval, start, end)
    frame = _read(sql, params, columns, settings, conn)
    return frame.astype(dict.fromkeys(INDICATOR_FIELDS, "float64"))


def list_series(
    settings: Settings | None = None, *, conn: psycopg2.extensions.connection | None = None
) -> pd.DataFrame:
    """Which symbol/interval pairs have final bars: columns symbol, interval, bars, first, last.

    ``first``/``last`` are the oldest/newest ``window_start`` (``datetime64[us, UTC]``); sorted by symbol
    and interval length.

    Raises:
        psycopg2.Error: the query failed.
    """
    sql = (
        "SELECT symbol, interval, count(*), min(window_start), max(window_start) FROM ohlcv"
        " WHERE is_final GROUP BY symbol, interval"
    )
    columns = ("symbol", "interval", "bars", "first", "last")
    frame = _read(sql, {}, columns, settings, conn)
    for name in ("first", "last"):
        frame[name] = pd.to_datetime(frame[name], utc=True).astype("datetime64[us, UTC]")
    order = frame["interval"].map(lambda name: Interval.parse(name).minutes)
    return frame.assign(_order=order).sort_values(["symbol", "_order"]).drop(columns="_order")


def latest_final_window(
    symbol: str, interval: str, *, conn: psycopg2.extensions.connection
) -> pd.Timestamp | None:
    """``window_start`` (UTC) of the newest final bar of ``symbol``/``interval``, or ``None`` when none.

    Uses the primary key index (newest first), so it is cheap enough to poll.

    Raises:
        ValueError: unknown interval.
        psycopg2.Error: the query failed.
    """
    with conn.cursor() as cur:
        cur.execute(
            "SELECT window_start FROM ohlcv WHERE symbol = %s AND interval = %s AND is_final"
            " ORDER BY window_start DESC LIMIT 1",
            (symbol, Interval.parse(interval).name),
        )
        row = cur.fetchone()
    return None if row is None else pd.Timestamp(row[0]).tz_convert("UTC")
