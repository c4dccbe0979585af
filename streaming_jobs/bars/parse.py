"""Parse Kafka tick records (``tickflow.schemas`` wire format) with an explicit schema and classify them.

Every record gets a ``reason`` (``None`` for a valid tick, else a ``producers.trades.DlqReason`` value) and
a human-readable ``detail``. Checks, in order (the first failing one is reported):

1. ``malformed``: empty value, not JSON, not an object, a field of the wrong JSON type (e.g. ``"price":
   "abc"``), a ``v`` other than ``TICK_SCHEMA_VERSION``, or an unknown ``source``;
2. ``missing_field``: a wire field absent, null or an empty string;
3. ``bad_price`` / ``bad_size``: not a finite number > 0;
4. ``bad_side``: not one of ``tickflow.schemas.Side``;
5. ``bad_timestamp``: ``event_time`` or ``receipt_time`` outside [2000-01-01, 2100-01-01) UTC.

These are the constraints of ``tickflow.schemas.Tick`` that the bar sinks and the ``tick_data`` table rely
on, so a record that passes can never make a sink fail.
"""

from __future__ import annotations

from typing import Final

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, DoubleType, LongType, StringType, StructField, StructType

from producers.trades import DlqReason
from tickflow.schemas import TICK_SCHEMA_VERSION, TICK_WIRE_FIELDS, Side, TickSource

_SPARK_TYPES: Final[dict[str, DataType]] = {"str": StringType(), "float": DoubleType(), "int": LongType()}
_CORRUPT: Final = "_corrupt_record"

TICK_SCHEMA: Final = StructType(
    [StructField(name, _SPARK_TYPES[kind]) for name, kind in TICK_WIRE_FIELDS]
    + [StructField(_CORRUPT, StringType())]
)
"""Spark schema of a tick record, built from ``TICK_WIRE_FIELDS``, plus the corrupt-record column."""

MIN_EVENT_TIME_US: Final = 946_684_800_000_000  # 2000-01-01T00:00:00Z
MAX_EVENT_TIME_US: Final = 4_102_444_800_000_000  # 2100-01-01T00:00:00Z

TICK_COLUMNS: Final[tuple[str, ...]] = tuple(name for name, _ in TICK_WIRE_FIELDS)
SOURCE_COLUMNS: Final[tuple[str, ...]] = ("partition", "offset")
"""Kafka coordinates kept on every parsed tick (the tie-breaker of equal event times)."""


def _checks(t: Column) -> list[tuple[Column, DlqReason, Column]]:
    """(failure condition, reason, detail) in reporting order; ``t`` is the parsed struct."""
    text_fields = [name for name, kind in TICK_WIRE_FIELDS if kind == "str"]
    checks: list[tuple[Column, DlqReason, Column]] = [
        (
            t.isNull() | t[_CORRUPT].isNotNull(),
            DlqReason.MALFORMED,
            F.lit("not a JSON object of tick fields"),
        ),
        (
            t["v"].isNotNull() & (t["v"] != TICK_SCHEMA_VERSION),
            DlqReason.MALFORMED,
            F.concat(F.lit("unsupported schema version "), t["v"].cast("string")),
        ),
    ]
    for name, _ in TICK_WIRE_FIELDS:
        missing = t[name].isNull()
        if name in text_fields:
            missing = missing | (F.length(t[name]) == 0)
        checks.append((missing, DlqReason.MISSING_FIELD, F.lit(f"missing or empty field {name}")))
    checks += [
        (
            ~t["source"].isin([s.value for s in TickSource]),
            DlqReason.MALFORMED,
            F.concat(F.lit("unknown source "), t["source"]),
        ),
        (
            _not_positive(t["price"]),
            DlqReason.BAD_PRICE,
            F.concat(F.lit("price "), t["price"].cast("string")),
        ),
        (_not_positive(t["size"]), DlqReason.BAD_SIZE, F.concat(F.lit("size "), t["size"].cast("string"))),
        (~t["side"].isin([s.value for s in Side]), DlqReason.BAD_SIDE, F.concat(F.lit("side "), t["side"])),
    ]
    for name in ("event_time", "receipt_time"):
        out_of_range = (t[name] < MIN_EVENT_TIME_US) | (t[name] >= MAX_EVENT_TIME_US)
        detail = F.concat(F.lit(f"{name} "), t[name].cast("string"), F.lit(" µs outside 2000..2100"))
        checks.append((out_of_range, DlqReason.BAD_TIMESTAMP, detail))
    return checks


def _not_positive(value: Column) -> Column:
    return F.isnan(value) | (value <= 0) | (value == float("inf"))


def parse_ticks(raw: DataFrame) -> DataFrame:
    """Parse ``raw`` (columns of ``streaming_jobs.source.RAW_COLUMNS``) into one row per record.

    Output columns: the wire fields of ``TICK_WIRE_FIELDS`` (``event_time``/``receipt_time`` as integer µs),
    ``partition``, ``offset``, ``reason`` (null when valid), ``detail``, and ``key``/``value``/``topic``/
    ``timestamp`` of the record for the dead-letter queue.
    """
    tick = F.from_json(
        F.col("value").cast("string"),
        TICK_SCHEMA,
        {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT},
    )
    # explode(array(...)) evaluates from_json once per record: a plain column would be inlined by the
    # optimizer into every check of the validity filter below (one JSON parse per reference)
    parsed = raw.select(*raw.columns, F.explode(F.array(tick)).alias("_t"))
    t = F.col("_t")
    reason = F.lit(None).cast("string")
    detail = F.lit(None).cast("string")
    for failed, why, text in reversed(_checks(t)):
        reason = F.when(failed, F.lit(why.value)).otherwise(reason)
        detail = F.when(failed, text).otherwise(detail)
    empty = F.col("value").isNull() | (F.length("value") == 0)
    reason = F.when(empty, F.lit(DlqReason.MALFORMED.value)).otherwise(reason)
    detail = F.when(empty, F.lit("empty value")).otherwise(detail)
    return parsed.select(
        *[t[name].alias(name) for name in TICK_COLUMNS],
        *SOURCE_COLUMNS,
        reason.alias("reason"),
        detail.alias("detail"),
        "key",
        "value",
        "topic",
        "timestamp",
    )


def valid_ticks(parsed: DataFrame) -> DataFrame:
    """The valid ticks of ``parse_ticks`` output with ``event_time`` as a Spark timestamp (UTC, µs)."""
    return parsed.where(F.col("reason").isNull()).select(
        *[c for c in TICK_COLUMNS if c != "event_time"],
        F.timestamp_micros("event_time").alias("event_time"),
        *SOURCE_COLUMNS,
    )


REJECT_COLUMNS: Final[tuple[str, ...]] = (
    "reason",
    "detail",
    "key",
    "value",
    "topic",
    "partition",
    "offset",
    "timestamp",
)
"""Columns of a rejected record: reason, detail and the Kafka record."""


def rejected_records(parsed: DataFrame) -> DataFrame:
    """The rejected records of ``parse_ticks`` output (``REJECT_COLUMNS``)."""
    return parsed.where(F.col("reason").isNotNull()).select(*REJECT_COLUMNS)
