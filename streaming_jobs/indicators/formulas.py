"""The one definition of Tickflow's technical indicators, from the `ta` library (bukosabino/ta 0.11).

Used by the streaming indicator job (per key, over its bar history) and by any batch recomputation, so
a value computed live equals the value a batch run over the same bars computes.

Formulas (``ta`` conventions, which the StockCharts ChartSchool worksheets in `ta`'s test data follow):

- SMA(n): mean of the last ``n`` closes (`ta.trend.SMAIndicator`).
- EMA(n): ``ewm(span=n, adjust=False)`` seeded with the first close, NaN for the first ``n - 1`` bars
  (`ta.trend.EMAIndicator`).
- RSI(14), Wilder: ``100 - 100 / (1 + avg_gain / avg_loss)`` with Wilder smoothing
  ``ewm(alpha=1/14, adjust=False)`` of gains and losses (`ta.momentum.RSIIndicator`).
- MACD(12, 26, 9): line ``EMA12 - EMA26``, signal ``EMA9(line)``, histogram ``line - signal``
  (`ta.trend.MACD`).
- Bollinger(20, 2): middle ``SMA20``, upper/lower ``middle ± 2σ`` (population σ, ddof=0), %B
  ``(close - lower) / (upper - lower)`` (a fraction), bandwidth ``(upper - lower) / middle * 100`` (percent)
  (`ta.volatility.BollingerBands`).

An indicator is NaN until its window has enough bars (e.g. ``sma_200`` needs 200 bars).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
from ta.momentum import RSIIndicator
from ta.trend import MACD, EMAIndicator, SMAIndicator
from ta.volatility import BollingerBands

from tickflow.schemas import INDICATOR_FIELDS

LONGEST_WINDOW: Final = 200
"""Bars the slowest indicator (SMA 200) needs before its first value."""

EMA_DECAY_BARS: Final = 400
"""Extra bars after which the seed of the slowest-decaying average, Wilder's RSI 14, weighs less than
``(13/14) ** 400 ≈ 1.4e-13`` in the value (EMA 26: ``(25/27) ** 400 ≈ 4e-14``)."""

HISTORY_BARS: Final = LONGEST_WINDOW + EMA_DECAY_BARS
"""Bars of history per (symbol, interval) that make a value computed over the last ``HISTORY_BARS`` bars
equal (relative difference ~1e-13) to the value over the whole series."""


def compute_indicators(close: pd.Series) -> pd.DataFrame:
    """Every indicator of ``INDICATOR_FIELDS`` for a series of bar closes.

    Args:
        close: closes in quote currency, one a bar, oldest first (any index; it is kept). Must be finite.

    Returns:
        A DataFrame with the index of ``close`` and the float64 columns ``INDICATOR_FIELDS``; NaN where a
        window is not yet full.

    Raises:
        ValueError: ``close`` contains NaN or infinite values.
    """
    close = close.astype("float64")
    if not np.isfinite(close.to_numpy()).all():
        raise ValueError("closes must be finite numbers")
    macd = MACD(close, window_slow=26, window_fast=12, window_sign=9)
    bands = BollingerBands(close, window=20, window_dev=2)
    columns = {
        "sma_20": SMAIndicator(close, window=20).sma_indicator(),
        "sma_50": SMAIndicator(close, window=50).sma_indicator(),
        "sma_200": SMAIndicator(close, window=200).sma_indicator(),
        "ema_12": EMAIndicator(close, window=12).ema_indicator(),
        "ema_26": EMAIndicator(close, window=26).ema_indicator(),
        "rsi_14": RSIIndicator(close, window=14).rsi(),
        "macd": macd.macd(),
        "macd_signal": macd.macd_signal(),
        "macd_hist": macd.macd_diff(),
        "bb_middle": bands.bollinger_mavg(),
        "bb_upper": bands.bollinger_hband(),
        "bb_lower": bands.bollinger_lband(),
        "bb_percent_b": bands.bollinger_pband(),
        "bb_bandwidth": bands.bollinger_wband(),
    }
    return pd.DataFrame(columns, index=close.index)[list(INDICATOR_FIELDS)].astype("float64")
