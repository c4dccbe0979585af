"""The de-duplication window of the bar aggregation (bars/aggregate.py), on a local streaming query.

What is a duplicate: the same (exchange, symbol, trade_id) (``TRADE_KEY``); the same trade_id on another
exchange is another trade. Within what lateness: Spark's ``dropDuplicatesWithinWatermark`` keeps an id
until the watermark (max event time - ``watermark``) passes the first copy's event time + the delay, and a
copy older than the watermark is late and dropped with the late ticks, so no copy is ever counted twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

from streaming_jobs.bars.aggregate import TRADE_KEY, compute_bars
from streaming_jobs.bars.finality import delay_ms
from tickflow.intervals import Interval

pytestmark = pytest.mark.spark

WATERMARK = "1 minute"
T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
SCHEMA = StructType(
    [
        StructField("exchange", StringType()),
        StructField("symbol", StringType()),
        StructField("trade_id", StringType()),
        StructField("price", DoubleType()),
        StructField("size", DoubleType()),
        StructField("event_us", LongType()),
        StructField("partition", LongType()),
        StructField("offset", LongType()),
    ]
)


def tick(trade_id: str, at: timedelta, *, exchange: str = "coinbase", offset: int) -> dict[str, object]:
    micros = int((T0 + at).timestamp() * 1_000_000)
    return {
        "exchange": exchange,
        "symbol": "BTC-USD",
        "trade_id": trade_id,
        "price": 100.0,
        "size": 1.0,
        "event_us": micros,
        "partition": 0,
        "offset": offset,
    }


@pytest.fixture
def query(spark: SparkSession, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    source = tmp_path / "ticks"
    source.mkdir()
    ticks = (
        spark.readStream.schema(SCHEMA)
        .option("maxFilesPerTrigger", 1)
        .json(str(source))
        .select(
            *TRADE_KEY[:1],
            "symbol",
            "trade_id",
            "price",
            "size",
            F.timestamp_micros("event_us").alias("event_time"),
            F.col("event_us").alias("receipt_time"),
            "partition",
            "offset",
        )
    )
    bars = compute_bars(ticks, [Interval.parse("1m")], WATERMARK, delay_ms(WATERMARK))
    name = f"dedup_{tmp_path.name.replace('-', '_')}"
    running = (
        bars.writeStream.format("memory")
        .queryName(name)
        .outputMode("update")
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .start()
    )
    try:
        yield source, name
    finally:
        running.stop()


def feed(spark: SparkSession, source: Path, batch: int, ticks: list[dict[str, object]], name: str) -> None:
    (source / f"{batch:03}.json").write_text("\n".join(json.dumps(t) for t in ticks))
    next(q for q in spark.streams.active if q.name == name).processAllAvailable()


def trade_count(spark: SparkSession, name: str, minute: int) -> int:
    rows = spark.sql(
        f"SELECT trade_count, updated_at FROM {name} WHERE window_start = '{T0 + timedelta(minutes=minute)}'"
    )
    return max(rows.collect(), key=lambda r: (r.updated_at, r.trade_count)).trade_count


def test_a_trade_is_counted_once_within_the_watermark_and_a_later_copy_is_dropped_as_late(
    spark: SparkSession, query: tuple[Path, str]
) -> None:
    source, name = query
    first = [tick("1", timedelta(seconds=10), offset=0), tick("2", timedelta(seconds=20), offset=1)]
    feed(spark, source, 0, first, name)
    assert trade_count(spark, name, 0) == 2
    # a copy of trade 1 (a replayed file), the same id on another exchange (another trade), a new trade
    again = [
        tick("1", timedelta(seconds=10), offset=2),
        tick("1", timedelta(seconds=10), exchange="kraken", offset=3),
        tick("3", timedelta(seconds=30), offset=4),
    ]
    feed(spark, source, 1, again, name)
    assert trade_count(spark, name, 0) == 4  # 1, 2, kraken 1, 3: the copy was not counted
    # the watermark moves to 12:05 - 1 min; then a copy of trade 2 arrives: late, dropped, bar unchanged
    feed(spark, source, 2, [tick("9", timedelta(minutes=5), offset=5)], name)
    feed(spark, source, 3, [tick("2", timedelta(seconds=20), offset=6)], name)
    feed(spark, source, 4, [tick("10", timedelta(minutes=5, seconds=1), offset=7)], name)
    assert trade_count(spark, name, 0) == 4
    assert trade_count(spark, name, 5) == 2
