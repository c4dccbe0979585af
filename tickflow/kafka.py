"""The one Kafka producer configuration of every stage, and producing with back-pressure.

Every producer is durable and ordered: ``acks=all`` and idempotence (no duplicates or reordering on
librdkafka's retries, so each key's records stay in order on their partition); compression from
``Settings.kafka_compression``; batching from ``Settings.producer_linger_ms`` and ``producer_batch_bytes``
(a sink that waits for its records with :func:`produce_all` flushes at once, so linger does not delay it).
When librdkafka's local queue is full, :func:`produce_waiting` serves delivery reports and tries again
until there is room: back-pressure slows the caller down and never drops a record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from tickflow.settings import Settings

BACKPRESSURE_WAIT_S: Final = 0.05
"""How long :func:`produce_waiting` serves callbacks before trying a full queue again."""
FLUSH_TIMEOUT_S: Final = 30.0
Record = tuple[str, bytes | None, bytes]
"""A record to produce: (topic, key, value)."""
DeliveryCallback = Callable[[KafkaError | None, Message], None]


def producer_config(settings: Settings, client_id: str = "tickflow") -> dict[str, Any]:
    """librdkafka configuration of Tickflow's producers (``client.id`` = ``client_id``)."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": True,
        "compression.type": settings.kafka_compression,
        "linger.ms": settings.producer_linger_ms,
        "batch.size": settings.producer_batch_bytes,
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 1_048_576,
    }


def make_producer(settings: Settings, client_id: str = "tickflow", **overrides: Any) -> Producer:
    """A producer with :func:`producer_config`; ``overrides`` are librdkafka properties (or callbacks such
    as ``on_delivery``/``stats_cb``) that replace or extend it."""
    return Producer({**producer_config(settings, client_id), **overrides})


def produce_waiting(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes | None,
    *,
    on_delivery: DeliveryCallback | None = None,
    on_wait: Callable[[], None] | None = None,
) -> None:
    """Queue one record; while the local queue is full (``BufferError``), call ``on_wait`` (metrics),
    serve callbacks for ``BACKPRESSURE_WAIT_S`` and try again.

    Raises:
        confluent_kafka.KafkaException: the record can never be sent (e.g. larger than ``message.max.bytes``).
    """
    extra = {} if on_delivery is None else {"on_delivery": on_delivery}
    while True:
        try:
            producer.produce(topic, value, key, **extra)
            return
        except BufferError:
            if on_wait is not None:
                on_wait()
            producer.poll(BACKPRESSURE_WAIT_S)


def produce_all(producer: Producer, records: Iterable[Record]) -> int:
    """Produce ``records`` and wait until every one is acknowledged. Returns how many were produced.

    Raises:
        KafkaException: a record was not delivered (the first delivery error), or the flush timed out
            (``FLUSH_TIMEOUT_S``).
    """
    errors: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            errors.append(error)

    count = 0
    for topic, key, value in records:
        produce_waiting(producer, topic, value, key, on_delivery=on_delivery)
        count += 1
    remaining = producer.flush(FLUSH_TIMEOUT_S)
    if errors:
        raise KafkaException(errors[0])
    if remaining:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"{remaining} records not delivered"))
    return count
