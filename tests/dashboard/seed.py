"""Dashboard test data, written where the pipeline writes it (PostgreSQL rows, the latest bar in Redis).

- BTC-USD: the real Coinbase hour (2023-09-05 16:00-17:00 UTC) as 1m/5m/15m bars of the independent
  pandas reference (``tests.reference_bars``), as in ``tests/conftest.py``'s ``coinbase_bars``.
- SKL-USD: the real ``match`` trades of the Coinbase websocket capture (2021-04-17 16:43-16:44), a second
  symbol, except its last 1m bar, held back for the live-update test.
- Indicators: ``tests.support.seed.indicator_rows`` (the pipeline's formulas) of each series.
- Anomalies: ``streaming_jobs.anomalies.rules.detect`` over the bars and those indicators.
- Predictions: a naive last-close model (``naive-test``) for the last five 1m bars and the next one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis

from streaming_jobs.anomalies.features import bar_features
from streaming_jobs.anomalies.rules import AnomalyRules, detect
from tests.conftest import BAR_INTERVALS, COINBASE_HOUR_CSV
from tests.reference_bars import load_trades_csv, reference_bars
from tests.support.seed import bar_model, indicator_rows, insert_frame, transaction
from tickflow.keys import bar_key
from tickflow.settings import Settings

BTC, SKL = "BTC-USD", "SKL-USD"
COINBASE_CAPTURE = "capture_COINBASE.ws.28.0"
MODEL_VERSION = "naive-test"


@dataclass(frozen=True)
class Seeded:
    """What the API serves after seeding (``bars[(symbol, interval)]`` includes the held-back bar)."""

    bars: dict[tuple[str, str], pd.DataFrame]
    indicators: dict[tuple[str, str], pd.DataFrame]
    held_back: pd.Series  # the last SKL-USD 1m bar, written by the live-update test
    anomalies: pd.DataFrame  # every stored anomaly (JSON-mode values)


def capture_trades(path: Path) -> pd.DataFrame:
    """``match`` trades of a Coinbase websocket capture (``<receipt s>: <json>`` lines) in the CSV's shape."""
    rows = []
    for line in path.read_text().splitlines():
        _, sep, payload = line.partition(": ")
        if not sep or '"match"' not in payload:
            continue
        message = json.loads(payload)
        if message.get("type") in ("match", "last_match"):
            rows.append(
                {
                    "symbol": message["product_id"],
                    "side": message["side"],
                    "price": float(message["price"]),
                    "amount": float(message["size"]),
                    "timestamp": message["time"],
                }
            )
    trades = pd.DataFrame(rows)
    trades["timestamp"] = pd.to_datetime(trades["timestamp"], utc=True, format="ISO8601").astype(
        "datetime64[us, UTC]"
    )
    return trades


def _series(trades: pd.DataFrame, symbol: str) -> dict[tuple[str, str], pd.DataFrame]:
    mine = trades[trades["symbol"] == symbol]
    return {(symbol, name): reference_bars(mine, minutes) for name, minutes in BAR_INTERVALS.items()}


def _anomalies(bars: pd.DataFrame, indicators: pd.DataFrame, now: datetime) -> list[dict[str, Any]]:
    features = bar_features(bars, volume_window=10, zscore_window=20)
    rows = pd.concat([bars[["symbol", "interval", "window_start", "close"]], features], axis=1)
    rows["rsi_14"] = indicators["rsi_14"]
    rows["latency_ms"] = np.nan
    rules = AnomalyRules.from_settings(Settings(_env_file=None))
    return [a.model_dump(mode="json") for a in detect(rows, rules, now)]


def _predictions(bars: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Naive model: the next close equals the last close, with a ±0.1% band."""
    base = bars.iloc[-6:]
    frame = pd.DataFrame(
        {
            "symbol": base["symbol"].to_numpy(),
            "interval": base["interval"].to_numpy(),
            "window_start": (base["window_start"] + pd.Timedelta(minutes=1)).to_numpy(),
            "model_version": MODEL_VERSION,
            "predicted_close": base["close"].to_numpy(),
            "predicted_return": 0.0,
            "lower": base["close"].to_numpy() * 0.999,
            "upper": base["close"].to_numpy() * 1.001,
            "base_close": base["close"].to_numpy(),
            "created_at": now,
        }
    )
    return frame


def write_bar(settings: Settings, bar: pd.Series) -> None:
    """Write one final bar as the bars job does: upsert into ``ohlcv`` and set its Redis latest key."""
    now = datetime.now(UTC)
    with transaction(settings.postgres_dsn) as cur:
        insert_frame(cur, "ohlcv", bar.to_frame().T.assign(is_final=True, updated_at=now))
    model = bar_model(bar, now)
    client = redis.Redis.from_url(settings.redis_url)
    client.set(bar_key(model.symbol, model.interval), model.to_json())
    client.close()


def seed(settings: Settings, shared_data: Path) -> Seeded:
    now = datetime.now(UTC)
    bars = {
        **_series(load_trades_csv(shared_data / COINBASE_HOUR_CSV), BTC),
        **_series(capture_trades(shared_data / COINBASE_CAPTURE), SKL),
    }
    indicators = {key: indicator_rows(frame) for key, frame in bars.items()}
    anomalies = pd.DataFrame(
        [a for key, frame in bars.items() for a in _anomalies(frame, indicators[key], now)]
    )
    held_back = bars[(SKL, "1m")].iloc[-1]
    redis.Redis.from_url(settings.redis_url).flushdb()
    with transaction(settings.postgres_dsn) as cur:
        for key, frame in bars.items():
            stored = frame.iloc[:-1] if key == (SKL, "1m") else frame
            insert_frame(cur, "ohlcv", stored.assign(is_final=True, updated_at=now))
            insert_frame(cur, "indicators", indicators[key].assign(updated_at=now))
        insert_frame(cur, "predictions", _predictions(bars[(BTC, "1m")], now))
        if not anomalies.empty:
            insert_frame(cur, "anomalies", anomalies)
    return Seeded(bars, indicators, held_back, anomalies)
