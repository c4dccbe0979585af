"""Reading back what the producers wrote: every record of a topic, from a real broker."""

from __future__ import annotations

import time
import uuid
from typing import NamedTuple

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tickflow.settings import Settings


class Record(NamedTuple):
    partition: int
    offset: int
    key: str
    value: dict
    raw: bytes


def consume_all(settings: Settings, topic: str, expected: int, timeout_s: float = 20.0) -> list[Record]:
    """All records of ``topic`` once ``expected`` have arrived (fails after ``timeout_s``), plus a short
    grace read so that surplus records (duplicates) would be seen too."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "fetch.wait.max.ms": 20,
            "enable.auto.commit": False,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    grace_until: float | None = None
    try:
        while True:
            now = time.monotonic()
            if grace_until is None and len(records) >= expected:
                grace_until = now + 0.5
            if (grace_until is not None and now > grace_until) or now > deadline:
                break
            for msg in consumer.consume(10_000, timeout=0.1):
                if msg.error():
                    raise AssertionError(f"consumer error: {msg.error()}")
                key = msg.key().decode() if msg.key() is not None else ""
                value = msg.value()
                records.append(Record(msg.partition(), msg.offset(), key, orjson.loads(value), value))
    finally:
        consumer.close()
    assert len(records) >= expected, f"only {len(records)} of {expected} records arrived in {topic}"
    return records
