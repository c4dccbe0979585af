"""Per-bar features the anomaly rules test, computed over a (symbol, interval) bar history.

Computed by the indicator job's per-key state function next to the indicators, so the rules need no
state of their own. Every feature of a bar uses only that bar and the bars before it.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

FEATURE_COLUMNS: Final[tuple[str, ...]] = (
    "prev_close",
    "price_move_pct",
    "volume",
    "volume_mean",
    "return_z",
)
"""Columns of :func:`bar_features`."""


def bar_features(bars: pd.DataFrame, volume_window: int, zscore_window: int) -> pd.DataFrame:
    """Anomaly features of each bar of one (symbol, interval) history.

    Args:
        bars: columns ``high``, ``low``, ``close`` (quote currency) and ``volume`` (base units), one row a
            bar, oldest first: the bars of the stream under the ``bar_empty_interval`` policy
            (``tickflow/bar_spec.py``; ``fill_forward``: an empty interval is a flat bar of zero volume).
        volume_window: bars in the rolling mean of volume (the current bar excluded).
        zscore_window: returns in the rolling mean and standard deviation (ddof=1) of the z-score (the
            current return excluded).

    Returns:
        ``FEATURE_COLUMNS`` with the index of ``bars``:
        ``prev_close`` the previous bar's close; ``price_move_pct`` the move of the bar's high or low,
        whichever is further, from the previous close, in percent (signed); ``volume`` the bar's volume;
        ``volume_mean`` the mean volume of the previous ``volume_window`` bars; ``return_z`` the z-score
        ``(r - mean) / std`` of the bar's simple return ``close / prev_close - 1`` against the previous
        ``zscore_window`` returns. NaN where there is not enough history (or the past returns are flat).
    """
    prev_close = bars["close"].shift(1)
    up = (bars["high"] / prev_close - 1.0) * 100.0
    down = (bars["low"] / prev_close - 1.0) * 100.0
    move = up.where(up.abs() >= down.abs(), down)
    volume_mean = bars["volume"].shift(1).rolling(volume_window, min_periods=volume_window).mean()
    returns = bars["close"] / prev_close - 1.0
    past = returns.shift(1).rolling(zscore_window, min_periods=zscore_window)
    std = past.std(ddof=1)
    return_z = (returns - past.mean()) / std.where(std > 0.0, np.nan)
    return pd.DataFrame(
        {
            "prev_close": prev_close,
            "price_move_pct": move,
            "volume": bars["volume"],
            "volume_mean": volume_mean,
            "return_z": return_z,
        },
        index=bars.index,
    ).astype("float64")
