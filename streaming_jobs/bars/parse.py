"""Parse Kafka tick records (``tickflow.schemas`` wire format) with an explicit schema and classify them.

Every record gets a ``reason`` (``None`` for a valid tick, else a ``tickflow.validity.DlqReason`` value) and
a human-readable ``detail``. Checks, in order (the first failing one is reported):

1. ``malformed``: empty value, not JSON, not an object, a field of the wrong JSON type (e.g. ``"price":
   "abc"``), or a ``v`` other than ``TICK_SCHEMA_VERSION``;
2. ``missing_field``: a wire field absent, null or an empty string;
3. the rules of ``tickflow.validity.FIELD_RULES``, the table the producer's validator is built from too
   (text bounds and control characters, price/size finite > 0, side, times in [2000, 2100), source);
4. ``future_event_time``: ``event_time`` more than ``max_clock_skew_s`` after the record's Kafka timestamp
   (the broker's log-append time on the tick topic), so that no record can move the watermark past now.

A record that passes can never make a sink fail (a database that still refuses one sends it to the
dead-letter topic as ``store_rejected``, see ``tick_store``).
"""

from __future__ import annotations

import operator
from functools import reduce
from typing import Final

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, DoubleType, LongType, StringType, StructField, StructType

from tickflow.schemas import TICK_SCHEMA_VERSION, TICK_WIRE_FIELDS
from tickflow.validity import (
    CONTROL_CHARS,
    FIELD_RULES,
    MAX_EVENT_TIME_US,
    MIN_EVENT_TIME_US,
    DlqReason,
    FieldRule,
)

_SPARK_TYPES: Final[dict[str, DataType]] = {"str": StringType(), "float": DoubleType(), "int": LongType()}
_CORRUPT: Final = "_corrupt_record"

TICK_SCHEMA: Final = StructType(
    [StructField(name, _SPARK_TYPES[kind]) for name, kind in TICK_WIRE_FIELDS]
    + [StructField(_CORRUPT, StringType())]
)
"""Spark schema of a tick record, built from ``TICK_WIRE_FIELDS``, plus the corrupt-record column."""

TICK_COLUMNS: Final[tuple[str, ...]] = tuple(name for name, _ in TICK_WIRE_FIELDS)
SOURCE_COLUMNS: Final[tuple[str, ...]] = ("partition", "offset")
"""Kafka coordinates kept on every parsed tick (the tie-breaker of equal event times)."""


def _checks(t: Column, record_time: Column, max_skew_us: int) -> list[tuple[Column, DlqReason, Column]]:
    """(failure condition, reason, detail) in reporting order; ``t`` is the parsed struct, ``record_time``
    the Kafka record timestamp."""
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
    for rule in FIELD_RULES:
        value = t[rule.field]
        detail = F.concat(F.lit(f"{rule.field} "), value.cast("string"), F.lit(f" is not {rule.describe()}"))
        checks.append((_fails(rule, value), rule.reason, detail))
    ahead_us = t["event_time"] - F.unix_micros(record_time)
    checks.append(
        (
            ahead_us > max_skew_us,
            DlqReason.FUTURE_EVENT_TIME,
            F.concat(
                F.lit("event_time "), (ahead_us / 1e6).cast("string"), F.lit(" s after the Kafka record")
            ),
        )
    )
    return checks


def _fails(rule: FieldRule, value: Column) -> Column:
    """The Spark condition under which a present, non-empty ``value`` fails ``rule``."""
    if rule.check == "text":
        return (F.length(value) > rule.max_chars) | value.rlike(CONTROL_CHARS)
    if rule.check == "positive_finite":
        return F.isnan(value) | (value <= 0) | (value == float("inf"))
    if rule.check == "one_of":
        return ~value.isin(sorted(rule.allowed))
    return (value < MIN_EVENT_TIME_US) | (value >= MAX_EVENT_TIME_US)


def parse_ticks(raw: DataFrame, max_clock_skew_s: float) -> DataFrame:
    """Parse ``raw`` (columns of ``streaming_jobs.source.RAW_COLUMNS``) into one row per record.

    ``max_clock_skew_s``: how far (s) a tick's event time may be ahead of its Kafka record timestamp.

    Output columns: the wire fields of ``TICK_WIRE_FIELDS`` (``event_time``/``receipt_time`` as integer µs),
    ``partition``, ``offset``, ``valid`` (boolean), ``reason`` (null when valid), ``detail``, and
    ``key``/``value``/``topic``/``timestamp`` of the record for the dead-letter queue.
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
    empty = F.col("value").isNull() | (F.length("value") == 0)
    checks = [(empty, DlqReason.MALFORMED, F.lit("empty value"))]
    checks += _checks(t, F.col("timestamp"), round(max_clock_skew_s * 1_000_000))
    # One boolean decides validity (what the bars need); the reason and its text are computed only for a
    # record that fails it. A CASE of every check per record is too large for Spark's generated code and
    # ran about 1.8x slower than this filter (bench/bench_bars.py, profile steps).
    failed = [F.coalesce(condition, F.lit(False)) for condition, _, _ in checks]
    valid = ~reduce(operator.or_, failed)
    reason = F.lit(None).cast("string")
    detail = F.lit(None).cast("string")
    for condition, (_, why, text) in reversed(list(zip(failed, checks, strict=True))):
        reason = F.when(condition, F.lit(why.value)).otherwise(reason)
        detail = F.when(condition, text).otherwise(detail)
    return parsed.select(
        *[t[name].alias(name) for name in TICK_COLUMNS],
        *SOURCE_COLUMNS,
        valid.alias("valid"),
        F.when(valid, F.lit(None).cast("string")).otherwise(reason).alias("reason"),
        F.when(valid, F.lit(None).cast("string")).otherwise(detail).alias("detail"),
        "key",
        "value",
        "topic",
        "timestamp",
    )


def valid_ticks(parsed: DataFrame) -> DataFrame:
    """The valid ticks of ``parse_ticks`` output with ``event_time`` as a Spark timestamp (UTC, µs)."""
    return parsed.where("valid").select(
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
    return parsed.where(~F.col("valid")).select(*REJECT_COLUMNS)
