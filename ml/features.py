"""The one feature definition shared by training, evaluation and live prediction.

Every feature of the row of bar ``t`` is computed from bars ``<= t`` only (backward-looking shifts and
rolling windows, no centring, no normalisation over the whole series), so a model never sees the future;
``tests/ml/test_features.py`` checks this by perturbing future bars. The target is the next bar's simple
return ``close[t+1] / close[t] - 1``; the implied next close is ``close[t] * (1 + return)``.

Intervals without trades (no bar is stored for them) follow the ``bar_empty_interval`` setting shared
with the indicators and anomaly features (``tickflow/bar_spec.py``), applied by :func:`regularize`:
``fill_forward`` (default) puts the bars on a gap-free grid of the interval, a window without trades being a
bar at the previous close with zero volume; ``skip`` keeps only the bars that exist, so a lag or window of
*n* bars may span more than *n* intervals. Either way "the next bar" is the bar of ``window_start +
interval``: under ``skip`` the target of a bar whose next interval is empty is unknown (NaN, unlabelled).

Features (all unitless unless noted; prices relative to the bar's close so one model fits any price level):

- ``price_lag_k`` (k = 1, 2, 3, 5): ``close[t-k] / close[t] - 1``.
- ``ret_1``: one-bar return ``close[t] / close[t-1] - 1``; ``ret_lag_k`` (k = 1, 2, 3): ``ret_1[t-k]``.
- ``ma_gap_n`` (n = 5, 10, 20): ``close[t] / SMA_n(close)[t] - 1``.
- ``volatility_n`` (n = 5, 10, 20): sample standard deviation of ``ret_1`` over the last n bars.
- ``range_rel`` ``high/low - 1``, ``body_rel`` ``close/open - 1``, ``vwap_gap`` ``vwap/close - 1``.
- ``log_volume`` ``ln(1 + volume)`` (volume in base units), ``volume_ratio_20``
  ``ln(1 + volume) - ln(1 + SMA_20(volume))``, ``log_trades`` ``ln(1 + trade_count)``.
- ``minute``, ``hour``, ``day_of_week`` (Monday = 0) of ``window_start`` in UTC.
- from the ``indicators`` table when present (NaN otherwise; XGBoost treats NaN as missing):
  ``ind_sma_{20,50,200}_gap`` / ``ind_ema_{12,26}_gap`` (``close / MA - 1``), ``ind_rsi_14`` (0..100),
  ``ind_macd_rel`` / ``ind_macd_signal_rel`` / ``ind_macd_hist_rel`` (MACD lines divided by close),
  ``ind_bb_percent_b``, ``ind_bb_bandwidth`` (Bollinger %B and bandwidth, J. Bollinger's definitions).

Rows whose look-back is not yet filled hold NaN in the affected features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from tickflow.bar_spec import EmptyIntervalPolicy, apply_empty_interval_policy
from tickflow.intervals import Interval

PRICE_LAGS: Final = (1, 2, 3, 5)
RETURN_LAGS: Final = (1, 2, 3)
MA_WINDOWS: Final = (5, 10, 20)
VOLATILITY_WINDOWS: Final = (5, 10, 20)
VOLUME_WINDOW: Final = 20
INDICATOR_GAPS: Final = ("sma_20", "sma_50", "sma_200", "ema_12", "ema_26")
INDICATOR_RELATIVE: Final = ("macd", "macd_signal", "macd_hist")
INDICATOR_RAW: Final = ("rsi_14", "bb_percent_b", "bb_bandwidth")

FEATURE_COLUMNS: Final[tuple[str, ...]] = (
    *(f"price_lag_{k}" for k in PRICE_LAGS),
    "ret_1",
    *(f"ret_lag_{k}" for k in RETURN_LAGS),
    *(f"ma_gap_{n}" for n in MA_WINDOWS),
    *(f"volatility_{n}" for n in VOLATILITY_WINDOWS),
    "range_rel",
    "body_rel",
    "vwap_gap",
    "log_volume",
    f"volume_ratio_{VOLUME_WINDOW}",
    "log_trades",
    "minute",
    "hour",
    "day_of_week",
    *(f"ind_{name}_gap" for name in INDICATOR_GAPS),
    *(f"ind_{name}_rel" for name in INDICATOR_RELATIVE),
    *(f"ind_{name}" for name in INDICATOR_RAW),
)
"""Feature names in model input order."""

HISTORY_BARS: Final = max(
    max(PRICE_LAGS) + 1, max(RETURN_LAGS) + 2, *MA_WINDOWS, max(VOLATILITY_WINDOWS) + 1, VOLUME_WINDOW
)
"""Bars of the gap-free grid, the current one included, that the features of one row depend on."""

REQUIRED_BAR_COLUMNS: Final = (
    "window_start",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "trade_count",
)


@dataclass(frozen=True)
class Dataset:
    """Features and target of one symbol/interval, one row per bar of the gap-free grid.

    Attributes:
        features: index ``window_start`` (``datetime64[us, UTC]``), columns :data:`FEATURE_COLUMNS`.
        close: the bar's close (quote currency) — the base of the prediction made at that bar.
        target_return: next bar's simple return; NaN on the last row (the next bar is not known yet).
        interval: the bar interval.
    """

    features: pd.DataFrame
    close: pd.Series
    target_return: pd.Series
    interval: Interval

    def __len__(self) -> int:
        return len(self.features)

    @property
    def next_close(self) -> pd.Series:
        """Actual next close implied by the target (quote currency); NaN on the last row."""
        return self.close * (1.0 + self.target_return)

    def labelled(self) -> Dataset:
        """Rows whose target is known (every row but the newest)."""
        return self.take(self.target_return.notna().to_numpy())

    def take(self, rows: slice | np.ndarray) -> Dataset:
        """Rows selected positionally (a slice or a boolean/integer array)."""
        return Dataset(
            self.features.iloc[rows], self.close.iloc[rows], self.target_return.iloc[rows], self.interval
        )


def _policy(empty_interval: EmptyIntervalPolicy | None) -> EmptyIntervalPolicy:
    """``empty_interval``, or the ``bar_empty_interval`` setting when ``None``."""
    if empty_interval is not None:
        return empty_interval
    from tickflow.settings import get_settings

    return get_settings().bar_empty_interval


def regularize(
    bars: pd.DataFrame, interval: Interval | str, empty_interval: EmptyIntervalPolicy | None = None
) -> pd.DataFrame:
    """Bars indexed by window_start, under the empty-interval policy (``None``: the
    ``bar_empty_interval`` setting).

    ``fill_forward``: a gap-free grid of ``interval`` from the first to the last bar; a missing window gets
    open = high = low = close = vwap = previous close and zero volume and trade count. Only earlier rows
    are used to fill a gap (forward fill), so filling never looks ahead. ``skip``: the bars as they are.

    Raises:
        ValueError: a required column is missing, or window_start values are duplicated or off the grid.
    """
    interval = Interval.parse(interval) if isinstance(interval, str) else interval
    missing = [c for c in REQUIRED_BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"bars lack columns {missing}; expected {list(REQUIRED_BAR_COLUMNS)}")
    frame = bars.assign(
        window_start=pd.to_datetime(bars["window_start"], utc=True).astype("datetime64[us, UTC]")
    )
    frame = frame.sort_values("window_start").set_index("window_start")
    if frame.index.has_duplicates:
        raise ValueError("bars have duplicated window_start values")
    if frame.empty:
        return frame.loc[:, list(REQUIRED_BAR_COLUMNS[1:])]
    step = pd.Timedelta(minutes=interval.minutes)
    if ((frame.index - frame.index[0]) % step != pd.Timedelta(0)).any():
        raise ValueError(f"window_start values are not aligned to the {interval.name} grid")
    frame = frame.loc[:, list(REQUIRED_BAR_COLUMNS[1:])].astype("float64")
    return apply_empty_interval_policy(frame, step, _policy(empty_interval))


def _indicator_features(close: pd.Series, indicators: pd.DataFrame | None) -> dict[str, pd.Series]:
    columns = (*INDICATOR_GAPS, *INDICATOR_RELATIVE, *INDICATOR_RAW)
    if indicators is None or indicators.empty:
        aligned = pd.DataFrame(np.nan, index=close.index, columns=list(columns))
    else:
        source = indicators.assign(
            window_start=pd.to_datetime(indicators["window_start"], utc=True).astype("datetime64[us, UTC]")
        ).set_index("window_start")
        aligned = source.reindex(close.index).reindex(columns=list(columns)).astype("float64")
    features = {f"ind_{name}_gap": close / aligned[name] - 1.0 for name in INDICATOR_GAPS}
    features |= {f"ind_{name}_rel": aligned[name] / close for name in INDICATOR_RELATIVE}
    features |= {f"ind_{name}": aligned[name] for name in INDICATOR_RAW}
    return features


def build_features(
    bars: pd.DataFrame,
    interval: Interval | str,
    indicators: pd.DataFrame | None = None,
    empty_interval: EmptyIntervalPolicy | None = None,
) -> pd.DataFrame:
    """The feature matrix of ``bars`` (see the module docstring), one row per bar of :func:`regularize`.

    Args:
        bars: rows of :func:`ml.data.load_bars` (any order; at least :data:`REQUIRED_BAR_COLUMNS`).
        interval: the bars' interval.
        indicators: rows of :func:`ml.data.load_indicators` for the same series, or ``None``.
        empty_interval: the empty-interval policy; ``None``: the ``bar_empty_interval`` setting.

    Returns:
        Index ``window_start`` (``datetime64[us, UTC]``), columns :data:`FEATURE_COLUMNS` (float64).

    Raises:
        ValueError: see :func:`regularize`.
    """
    return _grid_features(regularize(bars, interval, empty_interval), indicators)


def _grid_features(grid: pd.DataFrame, indicators: pd.DataFrame | None) -> pd.DataFrame:
    close = grid["close"]
    ret_1 = close / close.shift(1) - 1.0
    log_volume = np.log1p(grid["volume"])
    features: dict[str, pd.Series] = {f"price_lag_{k}": close.shift(k) / close - 1.0 for k in PRICE_LAGS}
    features["ret_1"] = ret_1
    features |= {f"ret_lag_{k}": ret_1.shift(k) for k in RETURN_LAGS}
    features |= {f"ma_gap_{n}": close / close.rolling(n).mean() - 1.0 for n in MA_WINDOWS}
    features |= {f"volatility_{n}": ret_1.rolling(n).std() for n in VOLATILITY_WINDOWS}
    features["range_rel"] = grid["high"] / grid["low"] - 1.0
    features["body_rel"] = close / grid["open"] - 1.0
    features["vwap_gap"] = grid["vwap"] / close - 1.0
    features["log_volume"] = log_volume
    features[f"volume_ratio_{VOLUME_WINDOW}"] = log_volume - np.log1p(
        grid["volume"].rolling(VOLUME_WINDOW).mean()
    )
    features["log_trades"] = np.log1p(grid["trade_count"])
    index = grid.index
    features["minute"] = pd.Series(index.minute, index=index)
    features["hour"] = pd.Series(index.hour, index=index)
    features["day_of_week"] = pd.Series(index.day_of_week, index=index)
    features |= _indicator_features(close, indicators)
    return pd.DataFrame(features, index=index)[list(FEATURE_COLUMNS)].astype("float64")


def make_dataset(
    bars: pd.DataFrame,
    interval: Interval | str,
    indicators: pd.DataFrame | None = None,
    empty_interval: EmptyIntervalPolicy | None = None,
) -> Dataset:
    """Features plus the next-bar target of ``bars`` (arguments as in :func:`build_features`).

    The target of bar ``t`` is the return to the bar of ``t + interval``; NaN when that bar is not known
    (the newest bar, or under ``skip`` an empty next interval).

    Raises:
        ValueError: see :func:`regularize`.
    """
    interval = Interval.parse(interval) if isinstance(interval, str) else interval
    grid = regularize(bars, interval, empty_interval)
    features = _grid_features(grid, indicators)
    close = grid["close"]
    step = pd.Timedelta(minutes=interval.minutes)
    next_close = close.reindex(close.index + step).to_numpy()
    target = next_close / close - 1.0
    return Dataset(features, close.rename("close"), target.rename("target_return"), interval)
