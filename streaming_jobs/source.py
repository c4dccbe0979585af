"""Streaming DataFrame of a Kafka topic: Spark's native connector when present, else the Python source.

Both give the columns of ``kafka_source.RAW_COLUMNS`` (``key``, ``value``, ``topic``, ``partition``,
``offset``, ``timestamp``, ``timestampType``), so everything downstream is one code path.
"""

from __future__ import annotations

from typing import Final, Literal

from py4j.protocol import Py4JJavaError
from pyspark.sql import DataFrame, SparkSession

from streaming_jobs.kafka_source import RAW_COLUMNS, SOURCE_NAME
from tickflow.settings import Settings

KAFKA_PROVIDER_CLASS: Final = "org.apache.spark.sql.kafka010.KafkaSourceProvider"

SourceKind = Literal["kafka", "python"]


def jvm_class_available(spark: SparkSession, name: str) -> bool:
    """True when the driver JVM can load class ``name`` (Spark's class loader, incl. ``--packages``)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    try:
        jvm.org.apache.spark.util.Utils.classForName(name, True, False)
    except Py4JJavaError:
        return False
    return True


def resolve_source(spark: SparkSession, choice: str) -> SourceKind:
    """The source to use for ``spark_source`` = ``auto`` | ``kafka`` | ``python``.

    Raises:
        ValueError: ``kafka`` is forced but the connector is not on the classpath (add it with
            ``--packages org.apache.spark:spark-sql-kafka-0-10_2.13:<spark version>``), or an unknown choice.
    """
    if choice == "python":
        return "python"
    available = jvm_class_available(spark, KAFKA_PROVIDER_CLASS)
    if choice == "kafka":
        if not available:
            raise ValueError(
                f"spark_source=kafka but {KAFKA_PROVIDER_CLASS} is not on the classpath; add "
                "--packages org.apache.spark:spark-sql-kafka-0-10_2.13:<spark version> or use "
                "spark_source=python"
            )
        return "kafka"
    if choice == "auto":
        return "kafka" if available else "python"
    raise ValueError(f"unknown spark_source {choice!r}; expected auto, kafka or python")


def read_topic(spark: SparkSession, settings: Settings, topic: str) -> DataFrame:
    """A streaming DataFrame of ``topic`` with the columns ``RAW_COLUMNS``.

    Starts at ``spark_starting_offsets`` when the query has no checkpoint and reads at most
    ``max_ticks_per_batch`` records per micro-batch.
    """
    kind = resolve_source(spark, settings.spark_source)
    if kind == "kafka":
        reader = (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", settings.kafka_bootstrap_servers)
            .option("subscribe", topic)
            .option("startingOffsets", settings.spark_starting_offsets)
            .option("maxOffsetsPerTrigger", str(settings.max_ticks_per_batch))
        )
    else:
        reader = (
            spark.readStream.format(SOURCE_NAME)
            .option("bootstrap_servers", settings.kafka_bootstrap_servers)
            .option("topic", topic)
            .option("starting_offsets", settings.spark_starting_offsets)
            .option("max_rows_per_batch", str(settings.max_ticks_per_batch))
        )
    return reader.load().select(*RAW_COLUMNS)
