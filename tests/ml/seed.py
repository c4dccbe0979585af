"""Write test bars and indicators straight into PostgreSQL (what the bar and indicator jobs would store)."""

from __future__ import annotations

import pandas as pd
import psycopg2
from psycopg2.extras import execute_values
from ta.momentum import RSIIndicator
from ta.trend import MACD, EMAIndicator, SMAIndicator
from ta.volatility import BollingerBands

from tests.reference_bars import BAR_COLUMNS


def insert_bars(dsn: str, bars: pd.DataFrame, *, final: bool = True) -> None:
    """Upsert ``bars`` (columns ``BAR_COLUMNS``) into ``ohlcv`` with ``is_final = final``."""
    rows = [
        (*(v.to_pydatetime() if isinstance(v, pd.Timestamp) else v for v in row), final)
        for row in bars[BAR_COLUMNS].itertuples(index=False)
    ]
    columns = ", ".join((*BAR_COLUMNS, "is_final"))
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        execute_values(
            cur,
            f"INSERT INTO ohlcv ({columns}) VALUES %s ON CONFLICT (symbol, interval, window_start)"
            " DO UPDATE SET is_final = EXCLUDED.is_final",
            rows,
        )
    conn.close()


def reference_indicators(bars: pd.DataFrame) -> pd.DataFrame:
    """Indicators of one series' closes computed with the ``ta`` library (NaN until warmed up)."""
    close = bars["close"].astype("float64").reset_index(drop=True)
    macd = MACD(close)
    bands = BollingerBands(close, window=20, window_dev=2)
    return pd.DataFrame(
        {
            "symbol": bars["symbol"].to_numpy(),
            "interval": bars["interval"].to_numpy(),
            "window_start": bars["window_start"].to_numpy(),
            "close": close,
            "sma_20": SMAIndicator(close, 20).sma_indicator(),
            "sma_50": SMAIndicator(close, 50).sma_indicator(),
            "ema_12": EMAIndicator(close, 12).ema_indicator(),
            "ema_26": EMAIndicator(close, 26).ema_indicator(),
            "rsi_14": RSIIndicator(close, 14).rsi(),
            "macd": macd.macd(),
            "macd_signal": macd.macd_signal(),
            "macd_hist": macd.macd_diff(),
            "bb_middle": bands.bollinger_mavg(),
            "bb_upper": bands.bollinger_hband(),
            "bb_lower": bands.bollinger_lband(),
            "bb_percent_b": bands.bollinger_pband(),
            "bb_bandwidth": bands.bollinger_wband(),
        }
    )


def insert_indicators(dsn: str, indicators: pd.DataFrame) -> None:
    """Insert indicator rows (NaN stored as NULL)."""
    frame = indicators.astype(object).where(indicators.notna(), None)
    rows = [
        tuple(v.to_pydatetime() if isinstance(v, pd.Timestamp) else v for v in row)
        for row in frame.itertuples(index=False)
    ]
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        execute_values(cur, f"INSERT INTO indicators ({', '.join(frame.columns)}) VALUES %s", rows)
    conn.close()
