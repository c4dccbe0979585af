"""Rows the pipeline stores and the API and dashboard read: the indicators of a bar and a prediction.

Times are UTC; prices in quote currency. ``IndicatorRow`` is a row of ``indicators`` (written by the
indicator job), ``Prediction`` a row of ``predictions`` (written by ``ml``); both ignore extra columns.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, create_model

from tickflow.schemas import INDICATOR_FIELDS

IndicatorRow = create_model(
    "IndicatorRow",
    __config__=ConfigDict(extra="ignore"),
    __doc__="Indicators of one bar: a row of ``indicators`` (null while a window is still warming up).",
    __module__=__name__,
    symbol=str,
    interval=str,
    window_start=datetime,
    close=(float | None, None),
    **dict.fromkeys(INDICATOR_FIELDS, (float | None, None)),
    updated_at=(datetime | None, None),
)


class Prediction(BaseModel):
    """A model's prediction of the close of the bar starting at ``window_start``: a row of ``predictions``."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    symbol: str
    interval: str
    window_start: datetime
    model_version: str
    predicted_close: float = Field(description="Quote currency.")
    predicted_return: float = Field(description="Fraction of base_close.")
    lower: float
    upper: float
    base_close: float = Field(description="Close of the bar the prediction was made from.")
    created_at: datetime | None = None
