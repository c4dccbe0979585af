"""Seeded synthetic bars: geometric Brownian motion, optionally with AR(1) bar returns.

Bar log returns are ``r[t] = phi * r[t-1] + mu + sigma * e[t]`` with standard normal ``e``; ``phi = 0`` is
plain GBM (unpredictable: no model should beat the last close), ``phi != 0`` puts a learnable signal into
the series. High/low extend beyond open/close by half-normal amounts; volume is log-normal and grows with
the absolute return; VWAP is the typical price ``(high + low + close) / 3``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.reference_bars import BAR_COLUMNS


def synthetic_bars(
    symbol: str = "SYN-USD",
    n: int = 3000,
    *,
    minutes: int = 1,
    start: str = "2024-01-01T00:00:00Z",
    price: float = 100.0,
    mu: float = 0.0,
    sigma: float = 0.002,
    phi: float = 0.0,
    seed: int = 7,
) -> pd.DataFrame:
    """``n`` consecutive bars of ``minutes`` minutes from ``start`` (UTC), columns ``BAR_COLUMNS``."""
    rng = np.random.default_rng(seed)
    shocks = mu + sigma * rng.standard_normal(n)
    log_returns = np.empty(n)
    previous = 0.0
    for i, shock in enumerate(shocks):
        previous = phi * previous + shock
        log_returns[i] = previous
    close = price * np.exp(np.cumsum(log_returns))
    open_ = np.concatenate([[price], close[:-1]])
    wick = sigma * 0.5 * np.abs(rng.standard_normal((2, n)))
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.lognormal(mean=0.0, sigma=0.5, size=n) * (1.0 + np.abs(log_returns) / sigma)
    vwap = (high + low + close) / 3.0
    window_start = pd.date_range(start, periods=n, freq=f"{minutes}min").astype("datetime64[us, UTC]")
    bars = pd.DataFrame(
        {
            "symbol": symbol,
            "interval": f"{minutes}m",
            "window_start": window_start,
            "window_end": window_start + pd.Timedelta(minutes=minutes),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "quote_volume": volume * vwap,
            "vwap": vwap,
            "trade_count": rng.poisson(20, n) + 1,
            "first_trade_time": window_start,
            "last_trade_time": window_start + pd.Timedelta(seconds=minutes * 60 - 1),
        }
    )
    return bars[BAR_COLUMNS]
