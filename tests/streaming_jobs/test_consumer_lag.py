"""The Spark consumer-lag gauge: after a rate-limited micro-batch it equals the records the topic holds
(end offsets read with a consumer) minus the rows the batch read."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import REGISTRY
from pyspark.sql import SparkSession

from streaming_jobs.bars.metrics import CONSUMER_LAG, install_progress_metrics
from streaming_jobs.source import read_topic
from tests.streaming_jobs.bars.support import produce
from tickflow.settings import Settings

pytestmark = pytest.mark.spark

QUERY = "lag-probe"


def test_spark_query_lag_gauge(spark: SparkSession, fresh_env: Settings) -> None:
    settings = fresh_env.model_copy(update={"max_ticks_per_batch": 10, "spark_starting_offsets": "earliest"})
    produce(settings, [(f"k{i}".encode(), b"{}") for i in range(40)])
    install_progress_metrics(spark)
    query = (
        read_topic(spark, settings, settings.topic_ticks)
        .writeStream.queryName(QUERY)
        .format("noop")
        .option("checkpointLocation", str(settings.checkpoint_dir / QUERY))
        .trigger(processingTime="1 hour")  # one batch now, the next in an hour
        .start()
    )
    try:
        deadline = time.monotonic() + 120
        while query.lastProgress is None and time.monotonic() < deadline:
            time.sleep(0.2)
        progress = query.lastProgress
        assert progress is not None
        read = progress["numInputRows"]
        labels = {"query": QUERY, "topic": settings.topic_ticks}
        while REGISTRY.get_sample_value("tickflow_bars_consumer_lag_records", labels) is None:
            assert time.monotonic() < deadline  # the listener runs on Spark's listener bus
            time.sleep(0.2)
        gauge = REGISTRY.get_sample_value("tickflow_bars_consumer_lag_records", labels)
    finally:
        query.stop()
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "lag-probe"})
    try:
        partitions = [TopicPartition(settings.topic_ticks, p) for p in range(settings.kafka_partitions)]
        on_topic = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions)
    finally:
        consumer.close()
    CONSUMER_LAG.remove(QUERY, settings.topic_ticks)
    assert on_topic == 40 and 0 < read <= 10
    assert gauge == on_topic - read
