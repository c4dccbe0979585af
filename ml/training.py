"""Load a series from the database and train its model: the step shared by `ml train`, `ml serve` and
notebooks."""

from __future__ import annotations

import pandas as pd
import psycopg2.extensions

from ml.data import latest_final_window, list_series, load_bars, load_indicators
from ml.features import make_dataset
from ml.model import MIN_TRAIN_ROWS, InsufficientDataError, PriceModel, TrainParams, train
from tickflow.intervals import Interval


def select_series(
    conn: psycopg2.extensions.connection,
    symbols: list[str] | None = None,
    intervals: list[str] | None = None,
) -> list[tuple[str, str]]:
    """The ``(symbol, interval)`` pairs with final bars, restricted to ``symbols``/``intervals`` when given.

    Raises:
        ValueError: unknown interval name.
        psycopg2.Error: the query failed.
    """
    wanted = None if intervals is None else {Interval.parse(name).name for name in intervals}
    listed = list_series(conn=conn)
    return [
        (row.symbol, row.interval)
        for row in listed.itertuples()
        if (symbols is None or row.symbol in symbols) and (wanted is None or row.interval in wanted)
    ]


def lookback_start(
    symbol: str, interval: str, lookback_days: float, *, conn: psycopg2.extensions.connection
) -> pd.Timestamp | None:
    """``lookback_days`` before the newest final bar of the series (UTC), or ``None`` when it has none.

    Raises:
        psycopg2.Error: the query failed.
    """
    newest = latest_final_window(symbol, interval, conn=conn)
    return None if newest is None else newest - pd.Timedelta(days=lookback_days)


def train_series(
    symbol: str,
    interval: str,
    lookback_days: float,
    *,
    conn: psycopg2.extensions.connection,
    params: TrainParams | None = None,
) -> PriceModel:
    """Train the model of ``symbol``/``interval`` on the ``lookback_days`` up to its newest final bar.

    Raises:
        InsufficientDataError: too few final bars.
        psycopg2.Error: a query failed.
    """
    start = lookback_start(symbol, interval, lookback_days, conn=conn)
    if start is None:
        raise InsufficientDataError(
            f"{symbol} {interval}: no final bars stored", missing_bars=MIN_TRAIN_ROWS + 1
        )
    bars = load_bars(symbol, interval, start, conn=conn)
    indicators = load_indicators(symbol, interval, start, conn=conn)
    return train(make_dataset(bars, interval, indicators), symbol, params)
