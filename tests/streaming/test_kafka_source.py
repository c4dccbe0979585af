"""The Python Kafka source's offset protocol against the real (embedded) broker, without Spark."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadMaxRows

from streaming_jobs.kafka_source import (
    KafkaPartition,
    KafkaSourceOptions,
    KafkaStreamReader,
    offset_key,
    split_read_limit,
)
from tickflow.settings import Settings

# (partition, records) per flush; every flush ends a record batch, so partition 0 has three batches: a
# broker whose ListOffsets reports the last batch's base offset + 1 would say 201 instead of 207
FLUSHES = [[(0, 100), (1, 50)], [(0, 100)], [(0, 7)]]


def produce_batches(settings: Settings, flushes: list[list[tuple[int, int]]]) -> dict[int, list[bytes]]:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, "linger.ms": 50})
    sent: dict[int, list[bytes]] = {}
    for flush in flushes:
        for partition, count in flush:
            for _ in range(count):
                value = f"p{partition}-{len(sent.setdefault(partition, []))}".encode()
                producer.produce(settings.topic_ticks, value=value, key=b"k", partition=partition)
                sent[partition].append(value)
        assert producer.flush(30) == 0
    return sent


def reader(settings: Settings, **options: str) -> KafkaStreamReader:
    return KafkaStreamReader(
        KafkaSourceOptions.parse(
            {"bootstrap_servers": settings.kafka_bootstrap_servers, "topic": settings.topic_ticks, **options}
        )
    )


def test_end_offsets_are_exact_and_read_returns_exactly_the_range(fresh_topics: Settings) -> None:
    topic = fresh_topics.topic_ticks
    sent = produce_batches(fresh_topics, FLUSHES)
    source = reader(fresh_topics)
    try:
        start = source.initialOffset()
        assert start == {offset_key(topic, p): 0 for p in range(fresh_topics.kafka_partitions)}
        end = source.latestOffset(start, ReadAllAvailable())
        expected = {key: 0 for key in start} | {offset_key(topic, 0): 207, offset_key(topic, 1): 50}
        assert end == expected
        planned = source.partitions(start, end)
        assert [(p.partition, p.start, p.end) for p in planned] == [(0, 0, 207), (1, 0, 50)]

        batches = list(source.read(KafkaPartition(topic, 0, 95, 207)))
        rows = [row for batch in batches for row in batch.to_pylist()]
        assert [row["offset"] for row in rows] == list(range(95, 207))
        assert [row["value"] for row in rows] == sent[0][95:207]
        assert {(row["topic"], row["partition"], row["key"]) for row in rows} == {(topic, 0, b"k")}
        assert all(row["timestamp"] is not None for row in rows)

        limited = source.latestOffset(start, ReadMaxRows(100))
        assert limited[offset_key(topic, 0)] == 207 * 100 // 257
        assert limited[offset_key(topic, 1)] == 50 * 100 // 257
    finally:
        source.stop()


def test_available_now_stops_at_the_offsets_seen_when_it_started(fresh_topics: Settings) -> None:
    topic = fresh_topics.topic_ticks
    produce_batches(fresh_topics, [[(2, 30)]])
    source = reader(fresh_topics)
    try:
        start = source.initialOffset()
        source.prepareForTriggerAvailableNow()
        produce_batches(fresh_topics, [[(2, 5)]])
        assert source.latestOffset(start, ReadAllAvailable())[offset_key(topic, 2)] == 30
    finally:
        source.stop()
    fresh = reader(fresh_topics, starting_offsets="latest")
    try:
        assert fresh.initialOffset()[offset_key(topic, 2)] == 35
    finally:
        fresh.stop()


def test_reading_offsets_the_broker_no_longer_has_fails_clearly(fresh_topics: Settings) -> None:
    topic = fresh_topics.topic_ticks
    produce_batches(fresh_topics, [[(3, 10)]])
    source = reader(fresh_topics, timeout_s="5")
    with pytest.raises(RuntimeError, match="records lost"):
        list(source.read(KafkaPartition(topic, 3, 0, 20)))


def test_read_limit_is_spread_by_backlog() -> None:
    start = {"t-0": 0, "t-1": 10, "t-2": 5}
    end = {"t-0": 1000, "t-1": 20, "t-2": 5}
    assert split_read_limit(start, end, 10_000) == end
    assert split_read_limit(start, end, 101) == {"t-0": 100, "t-1": 11, "t-2": 5}


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="missing option"):
        KafkaSourceOptions.parse({"topic": "x"})
    with pytest.raises(ValueError, match="starting_offsets"):
        KafkaSourceOptions.parse({"bootstrap_servers": "b", "topic": "x", "starting_offsets": "middle"})
