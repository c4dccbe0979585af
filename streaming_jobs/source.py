"""Streaming DataFrame of a Kafka topic through Spark's own Kafka connector (``format("kafka")``).

The connector (``spark-sql-kafka-0-10``) keeps each query's offsets in its checkpoint and never commits
consumer-group offsets. Options used: ``startingOffsets`` (only when a query has no checkpoint),
``maxOffsetsPerTrigger`` (bounds a micro-batch), ``minPartitions`` (Spark tasks per batch) and
``failOnDataLoss=true``: records that vanished between the checkpoint and the topic (a topic deleted or
recreated, retention passed, another cluster) stop the query instead of being skipped silently; the job then
names the query and the fix (``tickflow stream reset``, see ``streaming_jobs.checkpoints``).
"""

from __future__ import annotations

from typing import Final

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import (
    BinaryType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from tickflow.settings import Settings

RAW_SCHEMA: Final = StructType(
    [
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("timestamp", TimestampType()),
        StructField("timestampType", IntegerType()),
    ]
)
"""The columns of Spark's ``format("kafka")`` source, in its order (``timestamp``: the record's time, ms)."""

RAW_COLUMNS: Final[tuple[str, ...]] = tuple(RAW_SCHEMA.fieldNames())


def read_topic(spark: SparkSession, settings: Settings, topic: str) -> DataFrame:
    """A streaming DataFrame of ``topic`` with the columns ``RAW_COLUMNS``.

    Starts at ``spark_starting_offsets`` when the query has no checkpoint and reads at most
    ``max_ticks_per_batch`` records per micro-batch, in at least ``spark_min_partitions`` tasks.
    """
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka_bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", settings.spark_starting_offsets)
        .option("maxOffsetsPerTrigger", str(settings.max_ticks_per_batch))
        .option("failOnDataLoss", "true")
    )
    if settings.spark_min_partitions:
        reader = reader.option("minPartitions", str(settings.spark_min_partitions))
    return reader.load().select(*RAW_COLUMNS)
