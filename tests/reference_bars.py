"""An independent pandas reference of OHLCV/VWAP bars, computed straight from a trades CSV.

Used by tests to check what the pipeline stored. Deliberately shares no code with the pipeline: it reads
the CSV itself and aggregates with pandas (stable sort by event time, file order breaking ties, which is
the order in which a replay produces the ticks to their partition).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

BAR_COLUMNS = [
    "symbol",
    "interval",
    "window_start",
    "window_end",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "vwap",
    "trade_count",
    "first_trade_time",
    "last_trade_time",
]


def load_trades_csv(path: Path) -> pd.DataFrame:
    """Trades of a CSV with columns ``symbol,side,price,amount,timestamp`` (ISO-8601 UTC, µs)."""
    trades = pd.read_csv(path)
    trades["timestamp"] = pd.to_datetime(trades["timestamp"], utc=True, format="ISO8601").astype(
        "datetime64[us, UTC]"
    )
    return trades


def reference_bars(trades: pd.DataFrame, minutes: int) -> pd.DataFrame:
    """Bars of ``minutes``-minute tumbling windows ``[start, end)`` per symbol, one row a non-empty window."""
    name = {1: "1m", 5: "5m", 15: "15m"}.get(minutes, f"{minutes}m")
    t = trades.sort_values("timestamp", kind="stable").copy()
    t["window_start"] = t["timestamp"].dt.floor(f"{minutes}min")
    t["quote"] = t["price"] * t["amount"]
    grouped = t.groupby(["symbol", "window_start"], sort=True)
    bars = grouped.agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("amount", "sum"),
        quote_volume=("quote", "sum"),
        trade_count=("price", "size"),
        first_trade_time=("timestamp", "min"),
        last_trade_time=("timestamp", "max"),
    ).reset_index()
    bars["interval"] = name
    bars["window_end"] = bars["window_start"] + pd.Timedelta(minutes=minutes)
    bars["vwap"] = bars["quote_volume"] / bars["volume"]
    return bars[BAR_COLUMNS]
