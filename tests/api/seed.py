"""Test data for the API, written the way the pipeline writes it: rows in PostgreSQL, latest values in Redis.

Everything derives from the real Coinbase BTC-USD hour: ticks are its trades, bars the independent pandas
reference (``tests.reference_bars``), indicators/anomalies/predictions simple functions of those bars (only
two indicator columns, so the others are null). For each latest value that lives in Redis, PostgreSQL holds
an older revision (or nothing), so a test can tell which store answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pandas as pd
import psycopg2.extensions
import psycopg2.extras
import redis

from tests.conftest import BAR_INTERVALS, COINBASE_HOUR_CSV
from tests.reference_bars import load_trades_csv, reference_bars
from tests.support.seed import bar_model, insert_frame, transaction
from tickflow.anomaly import Anomaly
from tickflow.keys import bar_key, indicators_key, latest_price_key, prediction_key
from tickflow.schemas import Tick
from tickflow.settings import Settings

SYMBOL = "BTC-USD"
UNLISTED = "XBT-USD"  # Kraken's name for BTC: an unlisted symbol the pipeline accepted
MODEL_VERSION = "naive-test"
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Seeded:
    """What was written, as the API should return it."""

    trades: pd.DataFrame  # symbol, side, price, amount, timestamp, trade_id (file order)
    bars: dict[str, pd.DataFrame]  # interval -> reference bars
    indicators: pd.DataFrame
    anomalies: list[Anomaly]
    predictions: pd.DataFrame
    redis_values: dict[str, bytes]  # key -> value written to Redis


def load_trades(shared_data: Path) -> pd.DataFrame:
    """The CSV's trades with a trade id (the row number, zero-padded so ids sort in file order)."""
    trades = load_trades_csv(shared_data / COINBASE_HOUR_CSV)
    trades["trade_id"] = [f"{i:06d}" for i in range(len(trades))]
    return trades


def ticks_of(trades: pd.DataFrame, receipt_time_us: int, source: str = "replay") -> list[Tick]:
    """Tick wire records of ``trades`` (``raw_symbol`` = symbol, exchange coinbase)."""
    return [
        Tick(
            exchange="coinbase",
            symbol=row.symbol,
            raw_symbol=row.symbol,
            price=row.price,
            size=row.amount,
            side=row.side,
            trade_id=row.trade_id,
            event_time=int(row.timestamp.value // 1000),
            receipt_time=receipt_time_us,
            source=source,
        )
        for row in trades.itertuples()
    ]


def seed(settings: Settings, shared_data: Path) -> Seeded:
    trades = load_trades(shared_data)
    bars = {name: reference_bars(trades, minutes) for name, minutes in BAR_INTERVALS.items()}
    one_minute = bars["1m"]
    closes = one_minute["close"]
    indicators = pd.DataFrame(
        {
            "symbol": SYMBOL,
            "interval": "1m",
            "window_start": one_minute["window_start"],
            "close": closes,
            "sma_20": closes.rolling(20).mean(),
            "ema_12": closes.ewm(span=12, adjust=False).mean(),
        }
    )
    anomalies = _anomalies(one_minute)
    predictions = pd.DataFrame(
        {
            "symbol": SYMBOL,
            "interval": "1m",
            "window_start": one_minute["window_start"].iloc[-5:].to_numpy(),
            "model_version": MODEL_VERSION,
            "base_close": closes.shift(1).iloc[-5:].to_numpy(),
        }
    )
    predictions["predicted_close"] = predictions["base_close"] * 1.0001
    predictions["predicted_return"] = 0.0001
    predictions["lower"] = predictions["base_close"] * 0.995
    predictions["upper"] = predictions["base_close"] * 1.005
    predictions["created_at"] = NOW

    with transaction(settings.postgres_dsn) as cur:
        _insert_ticks(cur, trades)
        _insert_bars(cur, bars, trades)
        insert_frame(cur, "indicators", indicators.iloc[:-1])
        insert_frame(cur, "predictions", predictions.iloc[:-1])
        insert_frame(cur, "anomalies", pd.DataFrame([a.model_dump(mode="json") for a in anomalies]))
        # An unlisted symbol with stored bars (the first five 1m bars, relabelled).
        unlisted = one_minute.iloc[:5].assign(symbol=UNLISTED)
        insert_frame(cur, "ohlcv", unlisted.assign(updated_at=NOW))

    last_trade = trades.iloc[-1]
    redis_values = {
        latest_price_key(SYMBOL): orjson.dumps(
            {"symbol": SYMBOL, "price": float(last_trade.price), "time": last_trade.timestamp.isoformat()}
        ),
        bar_key(SYMBOL, "1m"): bar_model(one_minute.iloc[-1], NOW).to_json(),
        indicators_key(SYMBOL, "1m"): orjson.dumps(_records(indicators.iloc[-1:])[0]),
        prediction_key(SYMBOL, "1m"): orjson.dumps(_records(predictions.iloc[-1:])[0]),
    }
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    client.mset(redis_values)
    client.close()
    return Seeded(trades, bars, indicators, anomalies, predictions, redis_values)


def _anomalies(bars: pd.DataFrame) -> list[Anomaly]:
    """A price-spike anomaly for each of the three 1m bars with the largest absolute return."""
    returns = (bars["close"].pct_change() * 100).abs()
    return [
        Anomaly(
            anomaly_type="price_spike",
            severity="info",
            symbol=SYMBOL,
            interval="1m",
            event_time=bars["window_start"].iloc[i],
            value=float(returns.iloc[i]),
            threshold=0.01,
            details={"close": float(bars["close"].iloc[i])},
            detected_at=NOW,
        )
        for i in sorted(returns.nlargest(3).index)
    ]


def _insert_ticks(cur: psycopg2.extensions.cursor, trades: pd.DataFrame) -> None:
    rows = [
        (r.symbol, "coinbase", r.trade_id, r.timestamp, NOW, str(r.price), str(r.amount), r.side, "replay")
        for r in trades.itertuples()
    ]
    psycopg2.extras.execute_values(
        cur,
        "INSERT INTO tick_data (symbol, exchange, trade_id, event_time, receipt_time, price, size, side,"
        " source) VALUES %s",
        rows,
        page_size=2000,
    )


def _insert_bars(
    cur: psycopg2.extensions.cursor, bars: dict[str, pd.DataFrame], trades: pd.DataFrame
) -> None:
    """All bars; the last 1m bar as an older revision (its first 30 s of trades) - Redis has the final one."""
    for name, frame in bars.items():
        stored = frame.assign(updated_at=NOW, is_final=True)
        if name == "1m":
            last_start = frame["window_start"].iloc[-1]
            early = reference_bars(trades[trades["timestamp"] < last_start + timedelta(seconds=30)], 1)
            revision = early.iloc[[-1]].assign(updated_at=NOW - timedelta(seconds=10), is_final=False)
            stored = pd.concat([stored.iloc[:-1], revision])
        insert_frame(cur, "ohlcv", stored)


def _records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Rows as JSON-ready dicts (timestamps ISO-8601, NaN as null)."""
    return orjson.loads(frame.to_json(orient="records", date_format="iso", date_unit="us"))
