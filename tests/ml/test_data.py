"""Loading bars and indicators from PostgreSQL into pandas."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.data import BAR_COLUMNS, connect, latest_final_window, list_series, load_bars, load_indicators
from tests.ml.seed import insert_bars
from tickflow.settings import Settings


def test_load_bars_returns_the_stored_coinbase_bars(seeded_db: Settings, coinbase_bars) -> None:
    expected = coinbase_bars["5m"]
    bars = load_bars("BTC-USD", "5min", settings=seeded_db)
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert len(bars) == len(expected) == 12
    assert str(bars["window_start"].dtype) == "datetime64[us, UTC]"
    assert bars["close"].dtype == "float64" and bars["trade_count"].dtype == "int64"
    for name in ("open", "high", "low", "close", "volume", "vwap"):
        assert bars[name].to_numpy() == pytest.approx(expected[name].to_numpy(), rel=1e-12), name
    assert (bars["trade_count"].to_numpy() == expected["trade_count"].to_numpy()).all()
    assert bars["is_final"].all()


def test_ranges_are_half_open_utc_and_non_final_bars_are_left_out(seeded_db: Settings, coinbase_bars) -> None:
    window = load_bars("BTC-USD", "1m", "2023-09-05T16:10:00", "2023-09-05T16:20:00+00:00", seeded_db)
    assert window["window_start"].min() == pd.Timestamp("2023-09-05T16:10Z")
    assert window["window_start"].max() == pd.Timestamp("2023-09-05T16:19Z")
    newest = load_bars("BTC-USD", "1m", settings=seeded_db, limit=3)
    assert list(newest["window_start"]) == list(coinbase_bars["1m"]["window_start"].iloc[-3:])

    insert_bars(seeded_db.postgres_dsn, coinbase_bars["1m"].iloc[-1:], final=False)  # reopened
    assert len(load_bars("BTC-USD", "1m", settings=seeded_db)) == 59
    assert len(load_bars("BTC-USD", "1m", settings=seeded_db, final_only=False)) == 60
    with connect(seeded_db) as conn:
        assert latest_final_window("BTC-USD", "1m", conn=conn) == coinbase_bars["1m"]["window_start"].iloc[-2]
        assert latest_final_window("ETH-USD", "1m", conn=conn) is None


def test_indicators_and_series_listing(seeded_db: Settings) -> None:
    indicators = load_indicators("BTC-USD", "1m", settings=seeded_db)
    assert len(indicators) == 60
    assert indicators["sma_20"].iloc[:19].isna().all() and indicators["sma_20"].iloc[19:].notna().all()
    assert indicators["sma_200"].isna().all()
    assert load_indicators("BTC-USD", "5m", settings=seeded_db).empty
    series = list_series(seeded_db)
    assert list(zip(series["symbol"], series["interval"], strict=True)) == [
        ("AR-USD", "1m"),
        ("BTC-USD", "1m"),
        ("BTC-USD", "5m"),
        ("BTC-USD", "15m"),
        ("GBM-USD", "1m"),
    ]
    assert series.set_index(["symbol", "interval"]).loc[("GBM-USD", "1m"), "bars"] == 3000


def test_unknown_interval_is_rejected_before_querying(seeded_db: Settings) -> None:
    with pytest.raises(ValueError, match="unknown interval"):
        load_bars("BTC-USD", "2m", settings=seeded_db)
