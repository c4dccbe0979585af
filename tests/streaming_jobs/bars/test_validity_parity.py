"""One table of bad ticks, both paths: the producer's validator and the Spark bar job reject each with the
same reason code (both are built from ``tickflow.validity.FIELD_RULES``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pyspark.sql import SparkSession

from producers.validation import TickValidator
from streaming_jobs.bars.parse import parse_ticks
from streaming_jobs.source import RAW_SCHEMA
from tickflow.settings import Settings
from tickflow.validity import FIELD_RULES, DlqReason

pytestmark = pytest.mark.spark

RECEIVED = datetime(2023, 9, 5, 16, 0, 1, tzinfo=UTC)  # receipt time = Kafka record time
RECEIVED_US = 1_693_929_601_000_000
GOOD: dict[str, Any] = {
    "exchange": "coinbase",
    "symbol": "BTC-USD",
    "raw_symbol": "BTC-USD",
    "price": 25785.33,
    "size": 0.0012,
    "side": "buy",
    "trade_id": "5512345",
    "event_time": RECEIVED_US - 500_000,
}
BAD: list[tuple[dict[str, Any], DlqReason]] = [
    ({"exchange": "x" * 33}, DlqReason.MALFORMED),
    ({"exchange": "coin\x00base"}, DlqReason.MALFORMED),
    ({"symbol": "BTC-USD\x1b"}, DlqReason.UNKNOWN_SYMBOL),
    ({"raw_symbol": "B" * 65}, DlqReason.UNKNOWN_SYMBOL),
    ({"raw_symbol": "BTC\tUSD"}, DlqReason.UNKNOWN_SYMBOL),
    ({"price": 0.0}, DlqReason.BAD_PRICE),
    ({"price": -3.5}, DlqReason.BAD_PRICE),
    ({"size": -1.0}, DlqReason.BAD_SIZE),
    ({"size": 0.0}, DlqReason.BAD_SIZE),
    ({"side": "hold"}, DlqReason.BAD_SIDE),
    ({"trade_id": "55\x0012345"}, DlqReason.BAD_TRADE_ID),
    ({"trade_id": "7" * 129}, DlqReason.BAD_TRADE_ID),
    ({"trade_id": "id\x7f"}, DlqReason.BAD_TRADE_ID),
    ({"event_time": 946_684_799_999_999}, DlqReason.BAD_TIMESTAMP),  # 1999-12-31
    ({"event_time": 4_102_444_800_000_000}, DlqReason.BAD_TIMESTAMP),  # 2100-01-01
    ({"event_time": 4_070_908_800_000_000}, DlqReason.FUTURE_EVENT_TIME),  # 2099: would poison the watermark
    ({"event_time": RECEIVED_US + 31_000_000}, DlqReason.FUTURE_EVENT_TIME),  # 31 s ahead, skew 30 s
    ({"trade_id": ""}, DlqReason.MISSING_FIELD),
    ({"symbol": None}, DlqReason.MISSING_FIELD),
]


def test_every_field_rule_has_a_case() -> None:
    covered = {name for changes, _ in BAD for name in changes}
    assert {rule.field for rule in FIELD_RULES} - {"receipt_time", "source"} <= covered


def test_producer_and_bar_job_give_the_same_reason(spark: SparkSession) -> None:
    settings = Settings(_env_file=None, max_clock_skew_s=30.0)
    validator = TickValidator(settings)
    producer_reasons = []
    records = []
    for offset, (changes, _) in enumerate(BAD):
        trade = {**GOOD, **changes}
        producer_reasons.append(validator.check(trade, RECEIVED_US, live=False))  # type: ignore[arg-type]
        wire = {"v": 1, **trade, "receipt_time": RECEIVED_US, "source": "replay"}
        value = orjson.dumps(
            {k: v for k, v in wire.items() if v is not None}, option=orjson.OPT_SERIALIZE_NUMPY
        )
        records.append((b"BTC-USD", value, "ticks", 0, offset, RECEIVED, 0))
    parsed = parse_ticks(spark.createDataFrame(records, RAW_SCHEMA), settings.max_clock_skew_s)
    spark_reasons = dict(parsed.select("offset", "reason").collect())
    expected = [reason.value for _, reason in BAD]
    assert [r.value if r else None for r in producer_reasons] == expected
    assert [spark_reasons[offset] for offset in range(len(BAD))] == expected
