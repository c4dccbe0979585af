"""The bar job's native Kafka source path, with the settings of the compose file's ``bars`` service,
builds its query plan (source -> parse -> bars).

Spark's Kafka connector jar cannot be downloaded here (no Maven access), so a stand-in data source takes
its place. Spark refuses to register a Python source under the reserved name ``kafka``, so the test maps
``format("kafka")`` to the stand-in's name; everything else is the job's own code. The stand-in has the
connector's documented schema and checks the options the way the connector does (Spark's "Structured
Streaming + Kafka Integration Guide": ``kafka.bootstrap.servers`` required, exactly one of
``subscribe``/``subscribePattern``/``assign``, no consumer settings Spark manages itself,
``startingOffsets`` earliest/latest/JSON, ``maxOffsetsPerTrigger`` a positive long), and that they carry
the compose file's values. On the compose stack the real connector comes from ``--packages``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession
from pyspark.sql.datasource import DataSource
from pyspark.sql.streaming.readwriter import DataStreamReader

import streaming_jobs.source as source
from streaming_jobs.bars.aggregate import BAR_OUTPUT_COLUMNS, compute_bars
from streaming_jobs.bars.finality import delay_ms
from streaming_jobs.bars.parse import parse_ticks, valid_ticks
from streaming_jobs.spark_session import build_spark
from tests.deploy.compose import service_settings
from tickflow.settings import Settings

# Schema of Spark's Kafka source (Kafka Integration Guide, "Creating a Kafka Source for Streaming Queries").
CONNECTOR_SCHEMA = (
    "key BINARY, value BINARY, topic STRING, partition INT, offset BIGINT, timestamp TIMESTAMP, "
    "timestampType INT"
)
STAND_IN_NAME = "kafka_connector_stand_in"
# Consumer settings the connector refuses because it manages them itself.
CONNECTOR_MANAGED = {
    "kafka.auto.offset.reset",
    "kafka.enable.auto.commit",
    "kafka.key.deserializer",
    "kafka.value.deserializer",
    "kafka.interceptor.classes",
}


def connector_stand_in(expected: dict[str, str]) -> type[DataSource]:
    """A ``kafka`` data source that validates its options like Spark's connector and compares them with
    ``expected`` (lower-case keys). Defined in a function so that Spark pickles it by value."""

    class KafkaConnectorStandIn(DataSource):
        @classmethod
        def name(cls) -> str:
            return STAND_IN_NAME

        def schema(self) -> str:
            options = {key.lower(): value for key, value in self.options.items()}
            if not options.get("kafka.bootstrap.servers"):
                raise ValueError("Option 'kafka.bootstrap.servers' must be specified")
            strategies = [k for k in ("subscribe", "subscribepattern", "assign") if k in options]
            if len(strategies) != 1:
                raise ValueError(f"exactly one of subscribe/subscribePattern/assign, got {strategies}")
            if managed := CONNECTOR_MANAGED & options.keys():
                raise ValueError(f"Kafka option(s) {sorted(managed)} are not supported")
            starting = options.get("startingoffsets", "latest")
            if starting not in ("earliest", "latest"):
                json.loads(starting)
            if "maxoffsetspertrigger" in options and int(options["maxoffsetspertrigger"]) <= 0:
                raise ValueError("maxOffsetsPerTrigger must be positive")
            if options != expected:
                raise ValueError(f"connector options {options} != compose settings {expected}")
            return CONNECTOR_SCHEMA

    return KafkaConnectorStandIn


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    """A session of its own (the stand-in must not be visible to other tests' sessions)."""
    session = build_spark(Settings(_env_file=None), "tickflow-deploy-tests").newSession()
    yield session


@pytest.fixture
def connector_on_classpath(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `--packages ...spark-sql-kafka...` gives the driver: the connector class is loadable, and
    ``format("kafka")`` resolves (here: to the stand-in)."""
    real_available = source.jvm_class_available
    monkeypatch.setattr(
        source,
        "jvm_class_available",
        lambda spark, name: name == source.KAFKA_PROVIDER_CLASS or real_available(spark, name),
    )
    real_format = DataStreamReader.format
    monkeypatch.setattr(
        DataStreamReader,
        "format",
        lambda self, name: real_format(self, STAND_IN_NAME if name == "kafka" else name),
    )


def compose_source_options(settings: Settings) -> dict[str, str]:
    return {
        "kafka.bootstrap.servers": settings.kafka_bootstrap_servers,
        "subscribe": settings.topic_ticks,
        "startingoffsets": settings.spark_starting_offsets,
        "maxoffsetspertrigger": str(settings.max_ticks_per_batch),
    }


@pytest.mark.spark
def test_bar_job_plan_builds_on_the_native_source(
    spark: SparkSession, services: dict[str, dict[str, Any]], connector_on_classpath: None
) -> None:
    settings = service_settings(services["bars"])
    assert settings.spark_source == "kafka"
    spark.dataSource.register(connector_stand_in(compose_source_options(settings)))

    raw = source.read_topic(spark, settings, settings.topic_ticks)
    ticks = valid_ticks(parse_ticks(raw))
    bars = compute_bars(ticks, settings.interval_list, settings.watermark, delay_ms(settings.watermark))
    assert raw.isStreaming and bars.isStreaming
    assert tuple(bars.columns) == BAR_OUTPUT_COLUMNS
    plan = bars._jdf.queryExecution().analyzed().toString()
    assert STAND_IN_NAME in plan
    assert "EventTimeWatermark" in plan and "Aggregate" in plan


@pytest.mark.spark
def test_stand_in_rejects_options_the_connector_would_reject(
    spark: SparkSession, services: dict[str, dict[str, Any]], connector_on_classpath: None
) -> None:
    """The stand-in's checks bite: a missing topic option fails the plan."""
    settings = service_settings(services["bars"])
    session = spark.newSession()
    session.dataSource.register(connector_stand_in(compose_source_options(settings)))
    reader = session.readStream.format("kafka").option(
        "kafka.bootstrap.servers", settings.kafka_bootstrap_servers
    )
    with pytest.raises(AnalysisException, match="subscribe"):
        reader.load()
