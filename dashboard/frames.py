"""API JSON items -> typed pandas DataFrames (the inputs of the figure builders).

Column sets come from the API's response models, so the frames have every column even when the API
returned no rows. Timestamps become ``datetime64[us, UTC]``, numbers ``float64`` (null -> NaN).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import pandas as pd

from tickflow.anomaly import Anomaly
from tickflow.rows import IndicatorRow, Prediction
from tickflow.schemas import BAR_FIELDS, BAR_FLOAT_FIELDS, INDICATOR_FIELDS

BAR_TIMES: Final = ("window_start", "window_end", "first_trade_time", "last_trade_time", "updated_at")
INDICATOR_ROW_FIELDS: Final = tuple(IndicatorRow.model_fields)
INDICATOR_NUMBERS: Final = ("close", *INDICATOR_FIELDS)
PREDICTION_FIELDS: Final = tuple(Prediction.model_fields)
PREDICTION_NUMBERS: Final = ("predicted_close", "predicted_return", "lower", "upper", "base_close")
ANOMALY_FIELDS: Final = tuple(Anomaly.model_fields)


def _frame(
    items: Sequence[dict[str, Any]], columns: Sequence[str], times: Sequence[str], numbers: Sequence[str]
) -> pd.DataFrame:
    frame = pd.DataFrame(list(items), columns=list(columns))
    for column in times:
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601").astype(
            "datetime64[us, UTC]"
        )
    for column in numbers:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def bars_frame(items: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """``OHLCVBar`` items -> one row a bar, sorted by ``window_start`` (prices in quote currency, volume in
    base units)."""
    frame = _frame(items, BAR_FIELDS, BAR_TIMES, BAR_FLOAT_FIELDS)
    return frame.sort_values("window_start", ignore_index=True)


def indicators_frame(items: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """``IndicatorRow`` items -> one row a bar, sorted by ``window_start`` (NaN while warming up)."""
    frame = _frame(items, INDICATOR_ROW_FIELDS, ("window_start", "updated_at"), INDICATOR_NUMBERS)
    return frame.sort_values("window_start", ignore_index=True)


def predictions_frame(items: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """``Prediction`` items -> the newest prediction (by ``created_at``) of each predicted bar, sorted by
    ``window_start``."""
    frame = _frame(items, PREDICTION_FIELDS, ("window_start", "created_at"), PREDICTION_NUMBERS)
    frame = frame.sort_values(["window_start", "created_at"], na_position="first")
    return frame.drop_duplicates("window_start", keep="last").reset_index(drop=True)


def anomalies_frame(items: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """``Anomaly`` items -> newest ``event_time`` first."""
    frame = _frame(items, ANOMALY_FIELDS, ("event_time", "detected_at"), ("value", "threshold"))
    return frame.sort_values("event_time", ascending=False, ignore_index=True)
