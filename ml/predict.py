"""Next-close predictions from the newest bars, and writing them to PostgreSQL and Redis.

A prediction made at the close of bar ``t`` is about bar ``t + 1``: its ``window_start`` is
``window_start[t] + interval`` (the ``predictions`` table's convention), ``base_close`` is ``close[t]``.

Redis: ``prediction:{symbol}:{interval}`` (:func:`tickflow.keys.prediction_key`) holds the newest prediction
of the series as UTF-8 JSON, with TTL ``Settings.redis_prediction_ttl_s``::

    {"symbol": "BTC-USD", "interval": "1m", "window_start": "2023-09-05T17:00:00+00:00",
     "base_window_start": "2023-09-05T16:59:00+00:00", "model_version": "20250101T120000123456Z",
     "predicted_close": 25790.1, "predicted_return": 0.00018, "lower": 25770.4, "upper": 25809.9,
     "base_close": 25785.5, "band": 0.9, "created_at": "2025-01-01T12:00:01.5+00:00"}

Prices in quote currency, returns unitless, times ISO-8601 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import pandas as pd
import psycopg2.extensions
import redis
from psycopg2.extras import execute_values

from ml.features import make_dataset
from ml.model import PriceModel
from tickflow.intervals import Interval
from tickflow.keys import prediction_key
from tickflow.schemas import json_dumps

PREDICTION_COLUMNS: Final = (
    "symbol",
    "interval",
    "window_start",
    "model_version",
    "predicted_close",
    "predicted_return",
    "lower",
    "upper",
    "base_close",
)
"""Columns written to the ``predictions`` table (``created_at`` is set by the database)."""

_UPSERT: Final = (
    f"INSERT INTO predictions ({', '.join(PREDICTION_COLUMNS)}) VALUES %s"
    " ON CONFLICT (symbol, interval, window_start, model_version) DO UPDATE SET"
    " predicted_close = EXCLUDED.predicted_close, predicted_return = EXCLUDED.predicted_return,"
    " lower = EXCLUDED.lower, upper = EXCLUDED.upper, base_close = EXCLUDED.base_close,"
    " created_at = now()"
)


def predict_rows(
    model: PriceModel,
    bars: pd.DataFrame,
    indicators: pd.DataFrame | None = None,
    since: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Predictions made at every bar after ``since`` (at the newest bar only when ``since`` is None).

    Args:
        model: the series' model.
        bars: final bars of the series, oldest first, reaching at least
            :data:`ml.features.HISTORY_BARS` bars before the first prediction's base bar.
        indicators: the series' indicator rows over the same range, or ``None``.
        since: ``window_start`` of the last base bar already predicted.

    Returns:
        Columns :data:`PREDICTION_COLUMNS` plus ``base_window_start`` and ``band``; empty when ``bars``
        has no bar after ``since``.
    """
    interval = Interval.parse(model.info.interval)
    dataset = make_dataset(bars, interval, indicators)
    index = dataset.features.index
    chosen = index[-1:] if since is None else index[index > since]
    predicted = model.predict(dataset.features.loc[chosen], dataset.close.loc[chosen])
    out = predicted.rename_axis("base_window_start").reset_index()
    out["window_start"] = out["base_window_start"] + pd.Timedelta(minutes=interval.minutes)
    out["symbol"] = model.info.symbol
    out["interval"] = interval.name
    out["model_version"] = model.info.version
    out["band"] = model.info.band
    return out[[*PREDICTION_COLUMNS, "base_window_start", "band"]]


def _payload(row: pd.Series, created_at: datetime) -> bytes:
    record = {name: row[name] for name in (*PREDICTION_COLUMNS, "base_window_start", "band")}
    for name in ("window_start", "base_window_start"):
        record[name] = record[name].isoformat()
    for name in ("predicted_close", "predicted_return", "lower", "upper", "base_close", "band"):
        record[name] = float(record[name])
    record["created_at"] = created_at.isoformat()
    return json_dumps(record)


def write_predictions(
    rows: pd.DataFrame, conn: psycopg2.extensions.connection, client: redis.Redis, ttl_s: int
) -> None:
    """Upsert ``rows`` (of :func:`predict_rows`) into ``predictions``; put each series' newest in Redis.

    Idempotent: re-writing a prediction of the same model version replaces it.

    Raises:
        psycopg2.Error: the upsert failed (rolled back; Redis is then not touched).
        redis.RedisError: Redis is unreachable.
    """
    if rows.empty:
        return
    values = [
        (
            r.symbol,
            r.interval,
            r.window_start.to_pydatetime(),
            r.model_version,
            float(r.predicted_close),
            float(r.predicted_return),
            float(r.lower),
            float(r.upper),
            float(r.base_close),
        )
        for r in rows.itertuples(index=False)
    ]
    with conn, conn.cursor() as cur:
        execute_values(cur, _UPSERT, values, page_size=len(values))
    created_at = datetime.now(UTC)
    newest = rows.sort_values("window_start").groupby(["symbol", "interval"], sort=False).tail(1)
    with client.pipeline(transaction=False) as pipe:
        for _, row in newest.iterrows():
            pipe.set(prediction_key(row["symbol"], row["interval"]), _payload(row, created_at), ex=ttl_s)
        pipe.execute()
