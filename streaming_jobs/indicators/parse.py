"""Bar records from the ``bars_*`` topics (``bars_1m``, ``bars_5m``...): the explicit Spark schema and the
validity checks.

The bar job publishes every revision of a bar as ``tickflow.schemas.OHLCVBar`` JSON (key = symbol). The
schema is built from ``OHLCVBar``'s fields, plus ``last_receipt_time`` (when the bar record carries it:
the receipt time of the bar's latest tick, for the pipeline-latency rule). Checks (first failure reported,
reasons from ``tickflow.validity.DlqReason``):

1. ``malformed``: not a JSON object of bar fields, or an unknown interval;
2. ``missing_field``: ``symbol``, ``interval``, ``window_start``, ``high``, ``low``, ``close`` or ``volume``
   absent or null (an empty symbol counts as absent);
3. ``bad_price``: ``high``, ``low`` or ``close`` not a finite number > 0;
4. ``bad_size``: ``volume`` not a finite number >= 0.
"""

from __future__ import annotations

import typing
from datetime import datetime
from typing import Final

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from tickflow.intervals import Interval
from tickflow.schemas import BAR_FIELDS, OHLCVBar
from tickflow.validity import DlqReason

_SPARK_TYPES: Final[dict[type, DataType]] = {
    str: StringType(),
    float: DoubleType(),
    int: LongType(),
    bool: BooleanType(),
    datetime: TimestampType(),
}
CORRUPT: Final = "_corrupt_record"
RECEIPT_FIELD: Final = "last_receipt_time"


def _spark_type(annotation: object) -> DataType:
    """Spark type of an ``OHLCVBar`` field annotation (``X`` or ``X | None``)."""
    options = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    return _SPARK_TYPES[options[0]]


BAR_SCHEMA: Final = StructType(
    [StructField(name, _spark_type(OHLCVBar.model_fields[name].annotation)) for name in BAR_FIELDS]
    + [StructField(RECEIPT_FIELD, TimestampType()), StructField(CORRUPT, StringType())]
)
"""Spark schema of a bar record (timestamps parsed from ISO-8601 UTC, µs)."""

REQUIRED: Final[tuple[str, ...]] = ("symbol", "interval", "window_start", "high", "low", "close", "volume")

INPUT_COLUMNS: Final[tuple[str, ...]] = (
    *REQUIRED,
    "receipt_us",
    "visible_us",
    "offset",
    "corrupt",
    "raw",
    "topic",
    "partition",
)
"""Columns of :func:`parse_bars`."""


def parse_bars(raw: DataFrame) -> DataFrame:
    """One row per Kafka record of ``raw`` (columns of ``streaming_jobs.source.RAW_COLUMNS``).

    Output: ``INPUT_COLUMNS``: the required bar fields (``window_start`` as integer µs since the epoch, UTC),
    ``receipt_us`` (``last_receipt_time`` in µs, null when absent), ``visible_us`` (the bar record's Kafka
    timestamp in µs: when the bar job published it), the record's ``offset``, ``corrupt`` (true when
    the value is not a JSON object), ``raw`` (the value as text), ``topic`` and ``partition``.
    """
    bar = F.from_json(
        F.col("value").cast("string"),
        BAR_SCHEMA,
        {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT},
    )
    b = F.col("_b")
    return raw.withColumn("_b", bar).select(
        *[b[name].alias(name) for name in REQUIRED if name != "window_start"],
        F.unix_micros(b["window_start"]).alias("window_start"),
        F.unix_micros(b[RECEIPT_FIELD]).alias("receipt_us"),
        F.unix_micros("timestamp").alias("visible_us"),
        "offset",
        (b.isNull() | b[CORRUPT].isNotNull()).alias("corrupt"),
        F.col("value").cast("string").alias("raw"),
        "topic",
        "partition",
    )


def check_bars(records: pd.DataFrame) -> pd.DataFrame:
    """The verdict on each record of :func:`parse_bars` output.

    Returns:
        Columns ``reason`` (a ``DlqReason`` value, None when valid) and ``detail`` (what is wrong), with
        the index of ``records``.
    """
    prices = records[["high", "low", "close"]].astype("float64").to_numpy()
    volume = records["volume"].astype("float64").to_numpy()
    missing = records[list(REQUIRED)].isna().any(axis=1) | (records["symbol"].fillna("") == "")
    unknown_interval = records["interval"].notna() & ~records["interval"].map(_known_interval)
    checks = [
        (records["corrupt"].astype(bool), DlqReason.MALFORMED, "not a JSON object of bar fields"),
        (unknown_interval, DlqReason.MALFORMED, "unknown interval"),
        (missing, DlqReason.MISSING_FIELD, f"a required field is missing or empty: {', '.join(REQUIRED)}"),
        (
            ~(np.isfinite(prices) & (prices > 0)).all(axis=1),
            DlqReason.BAD_PRICE,
            "high/low/close not finite > 0",
        ),
        (~(np.isfinite(volume) & (volume >= 0)), DlqReason.BAD_SIZE, "volume not finite >= 0"),
    ]
    verdict = pd.DataFrame({"reason": None, "detail": None}, index=records.index, dtype=object)
    for failed, reason, detail in reversed(checks):
        mask = np.asarray(failed, dtype=bool)
        verdict.loc[mask, ["reason", "detail"]] = [reason.value, detail]
    return verdict


def _known_interval(name: object) -> bool:
    if not isinstance(name, str):
        return False
    try:
        Interval.parse(name)
    except ValueError:
        return False
    return True
