"""``tickflow.kafka``: the one producer configuration and producing through a full local queue."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from tickflow import kafka
from tickflow.settings import Settings


class FullQueueProducer:
    """A stand-in ``Producer`` whose local queue is full for the first ``full_for`` attempts; records every
    produced record and fails the deliveries of ``failing`` topics."""

    def __init__(self, full_for: int = 0, failing: frozenset[str] = frozenset(), left: int = 0) -> None:
        self.full_for, self.failing, self.left = full_for, failing, left
        self.produced: list[tuple[str, bytes, bytes | None]] = []
        self.polls: list[float] = []
        self._callbacks: list[tuple[Any, str]] = []

    def produce(self, topic: str, value: bytes, key: bytes | None, on_delivery: Any = None) -> None:
        if self.full_for:
            self.full_for -= 1
            raise BufferError("Local: Queue full")
        self.produced.append((topic, value, key))
        if on_delivery is not None:
            self._callbacks.append((on_delivery, topic))

    def poll(self, timeout: float) -> int:
        self.polls.append(timeout)
        return 0

    def flush(self, timeout: float) -> int:
        for callback, topic in self._callbacks:
            callback(KafkaError(KafkaError._MSG_TIMED_OUT) if topic in self.failing else None, None)
        return self.left


def test_every_producer_is_idempotent_with_the_configured_batching() -> None:
    settings = Settings(_env_file=None, producer_linger_ms=7, kafka_compression="zstd")
    config = kafka.producer_config(settings, "tickflow-test")
    assert config["enable.idempotence"] is True and config["acks"] == "all"
    assert (config["linger.ms"], config["compression.type"], config["client.id"]) == (
        7,
        "zstd",
        "tickflow-test",
    )


def test_produce_waits_while_the_queue_is_full() -> None:
    producer = FullQueueProducer(full_for=3)
    waits: list[None] = []
    kafka.produce_waiting(producer, "t", b"v", b"k", on_wait=lambda: waits.append(None))  # type: ignore[arg-type]
    assert producer.produced == [("t", b"v", b"k")]
    assert len(waits) == 3 and producer.polls == [kafka.BACKPRESSURE_WAIT_S] * 3


def test_produce_all_counts_and_reports_the_first_failed_delivery() -> None:
    records = [("ok", b"1", b"a"), ("bad", None, b"b")]
    assert kafka.produce_all(FullQueueProducer(full_for=1), records[:1]) == 1  # type: ignore[arg-type]
    with pytest.raises(KafkaException):
        kafka.produce_all(FullQueueProducer(failing=frozenset({"bad"})), records)  # type: ignore[arg-type]
    with pytest.raises(KafkaException, match="not delivered"):
        kafka.produce_all(FullQueueProducer(left=1), records[:1])  # type: ignore[arg-type]
