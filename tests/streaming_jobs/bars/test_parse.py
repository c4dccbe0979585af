"""Tick parsing: explicit schema, one reason per rejected record (Spark batch over the job's parse step)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from streaming_jobs.bars.parse import parse_ticks, rejected_records, valid_ticks
from streaming_jobs.source import RAW_SCHEMA
from tickflow.schemas import Tick

pytestmark = pytest.mark.spark

GOOD = Tick(
    exchange="coinbase",
    symbol="BTC-USD",
    raw_symbol="BTC-USD",
    price=25785.33,
    size=0.0012,
    side="sell",
    trade_id="5512345",
    event_time=1693929600123456,
    receipt_time=1693929600130000,
    source="live",
)


def variant(**changes: object) -> bytes:
    """The good tick's JSON with fields replaced (``None`` removes a field)."""
    fields = GOOD.model_dump(mode="json")
    for name, value in changes.items():
        if value is None:
            fields.pop(name)
        else:
            fields[name] = value
    return orjson.dumps(fields)


CASES: list[tuple[bytes | None, str | None]] = [
    (GOOD.to_wire(), None),
    (variant(price=25785), None),  # an integer JSON number is a valid price
    (None, "malformed"),
    (b"", "malformed"),
    (b"{not json", "malformed"),
    (b"[1, 2]", "malformed"),
    (b"\xff\xfe", "malformed"),
    (variant(price="25785.33"), "malformed"),
    (variant(event_time=1.5e15), "malformed"),
    (variant(v=2), "malformed"),
    (variant(source="made-up"), "malformed"),
    (variant(symbol=None), "missing_field"),
    (variant(trade_id=""), "missing_field"),
    (variant(v=None), "missing_field"),
    (variant(price=0), "bad_price"),
    (variant(price=-1.5), "bad_price"),
    (variant(price=None).replace(b"}", b',"price":NaN}'), "bad_price"),
    (variant(size=0.0), "bad_size"),
    (variant(side="hold"), "bad_side"),
    (variant(event_time=0), "bad_timestamp"),
    (variant(receipt_time=4_200_000_000_000_000), "bad_timestamp"),
    (variant(trade_id="55\u000012345"), "bad_trade_id"),  # valid JSON, but PostgreSQL text holds no NUL
    (variant(raw_symbol="BTC\u001b[31m"), "unknown_symbol"),
    (variant(trade_id="x" * 129), "bad_trade_id"),
    (variant(event_time=GOOD.event_time + 31_000_000), "future_event_time"),  # 31 s after the record
    (variant(event_time=4_070_908_800_000_000), "future_event_time"),  # 2099
]


def test_every_record_is_parsed_or_rejected_with_its_reason(spark: SparkSession) -> None:
    received = datetime(2023, 9, 5, 16, tzinfo=UTC)
    rows = [(b"BTC-USD", value, "ticks", 0, offset, received, 0) for offset, (value, _) in enumerate(CASES)]
    parsed = parse_ticks(spark.createDataFrame(rows, RAW_SCHEMA), 30.0).cache()

    reasons = {row["offset"]: row["reason"] for row in parsed.select("offset", "reason").collect()}
    assert reasons == {offset: reason for offset, (_, reason) in enumerate(CASES)}

    rejected = rejected_records(parsed).collect()
    assert len(rejected) == sum(reason is not None for _, reason in CASES)
    assert all(row["detail"] for row in rejected)
    assert {row["value"] for row in rejected} == {bytes(v) if v is not None else None for v, r in CASES if r}

    valid = valid_ticks(parsed)
    good = valid.withColumn("event_us", F.unix_micros("event_time")).orderBy("offset").collect()
    assert [row["offset"] for row in good] == [0, 1]
    first = good[0].asDict()
    assert first["event_us"] == GOOD.event_time
    assert dict(valid.dtypes)["event_time"] == "timestamp"
    assert {k: first[k] for k in ("symbol", "price", "size", "side", "trade_id", "receipt_time")} == {
        "symbol": "BTC-USD",
        "price": 25785.33,
        "size": 0.0012,
        "side": "sell",
        "trade_id": "5512345",
        "receipt_time": 1693929600130000,
    }
    assert good[1]["price"] == 25785.0
