"""The tick producer: back-pressure instead of drops, failures counted."""

from __future__ import annotations

from collections import defaultdict

from prometheus_client import REGISTRY

from infra.local.sandbox import free_port
from producers.kafka_producer import TickProducer
from tests.producers.kafka_util import consume_all
from tickflow.settings import Settings


def test_full_queue_waits_and_loses_nothing(fresh_topics: Settings) -> None:
    producer = TickProducer(fresh_topics, **{"queue.buffering.max.messages": 50})
    count = 3000
    values = (f'{{"n":{n}}}'.encode() for n in range(count))
    keys = (f"k{n % 3}".encode() for n in range(count))
    assert producer.send_many(fresh_topics.topic_ticks, values, keys) == count
    assert producer.flush() == 0
    assert producer.backpressure_waits > 0  # the queue did fill up
    assert (producer.sent, producer.delivered, producer.failed) == (count, count, 0)
    records = consume_all(fresh_topics, fresh_topics.topic_ticks, count)
    assert sorted(r.value["n"] for r in records) == list(range(count))
    per_key = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        per_key[record.key].append(record.value["n"])
    assert all(ns == sorted(ns) for ns in per_key.values())  # each key in send order


def test_latency_from_librdkafka_statistics(fresh_topics: Settings) -> None:
    producer = TickProducer(fresh_topics, **{"statistics.interval.ms": 100})
    for n in range(500):
        producer.send(fresh_topics.topic_ticks, b"{}", str(n % 7).encode())
    assert producer.flush() == 0
    sample = {"stage": "request", "quantile": "0.99"}
    for _ in range(50):  # statistics arrive every 100 ms, served by poll
        producer.poll(0.1)
        if REGISTRY.get_sample_value("tickflow_producer_latency_seconds", sample):
            break
    latency = REGISTRY.get_sample_value("tickflow_producer_latency_seconds", sample)
    assert latency is not None and 0 < latency < 10


def test_delivery_failures_are_counted() -> None:
    unreachable = Settings(_env_file=None, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    producer = TickProducer(unreachable, **{"message.timeout.ms": 300, "log_level": 0})
    before = REGISTRY.get_sample_value(
        "tickflow_producer_delivery_failures_total", {"topic": "nowhere", "error": "_MSG_TIMED_OUT"}
    )
    for n in range(5):
        producer.send("nowhere", b"x", str(n).encode())
    assert producer.flush(10) == 0
    assert (producer.failed, producer.delivered) == (5, 0)
    after = REGISTRY.get_sample_value(
        "tickflow_producer_delivery_failures_total", {"topic": "nowhere", "error": "_MSG_TIMED_OUT"}
    )
    assert after == (before or 0) + 5
