"""Write test bars and indicators straight into PostgreSQL (what the bar and indicator jobs would store)."""

from __future__ import annotations

import pandas as pd

from tests.reference_bars import BAR_COLUMNS
from tests.support.seed import insert_frame, transaction


def insert_bars(dsn: str, bars: pd.DataFrame, *, final: bool = True) -> None:
    """Upsert ``bars`` (columns ``BAR_COLUMNS``) into ``ohlcv`` with ``is_final = final``."""
    with transaction(dsn) as cur:
        insert_frame(
            cur,
            "ohlcv",
            bars[BAR_COLUMNS].assign(is_final=final),
            "ON CONFLICT (symbol, interval, window_start) DO UPDATE SET is_final = EXCLUDED.is_final",
        )


def insert_indicators(dsn: str, indicators: pd.DataFrame) -> None:
    """Insert indicator rows (``tests.support.seed.indicator_rows``; NaN stored as NULL)."""
    with transaction(dsn) as cur:
        insert_frame(cur, "indicators", indicators)
