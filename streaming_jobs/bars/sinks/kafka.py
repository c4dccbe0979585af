"""Kafka writers: bar revisions on ``aggregated_data_{1min,5min,15min}`` (key = symbol) and dead letters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from tickflow.schemas import OHLCVBar, json_dumps
from tickflow.settings import Settings

FLUSH_TIMEOUT_S: Final = 30.0
Record = tuple[str, bytes | None, bytes]
"""(topic, key, value)."""


def make_producer(settings: Settings) -> Producer:
    """An idempotent producer (acks=all) with the configured compression."""
    return Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "enable.idempotence": True,
            "compression.type": settings.kafka_compression,
            "linger.ms": 5,
        }
    )


def produce_all(producer: Producer, records: Iterable[Record]) -> int:
    """Produce ``records`` and wait until every one is acknowledged. Returns how many were produced.

    Raises:
        KafkaException: a record was not delivered (the first delivery error), or the flush timed out.
    """
    errors: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            errors.append(error)

    count = 0
    for topic, key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
    remaining = producer.flush(FLUSH_TIMEOUT_S)
    if errors:
        raise KafkaException(errors[0])
    if remaining:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"{remaining} records not delivered"))
    return count


def bar_record(bar: OHLCVBar, topic: str, last_receipt_time: str | None) -> Record:
    """The Kafka record of a bar revision: ``OHLCVBar`` JSON plus ``last_receipt_time`` (receipt time of
    the bar's latest tick, ISO-8601 UTC) when known."""
    data = bar.model_dump(mode="json")
    if last_receipt_time is not None:
        data["last_receipt_time"] = last_receipt_time
    return topic, bar.symbol.encode(), json_dumps(data)


class KafkaBarSink:
    """Publishes bar revisions to the topic of their interval."""

    def __init__(self, settings: Settings) -> None:
        self._producer = make_producer(settings)
        self._topics = {i.name: settings.bar_topic(i) for i in settings.interval_list}

    def write(self, bars: Sequence[OHLCVBar], receipt_times: Sequence[str | None]) -> None:
        """Produce one record per bar (``receipt_times`` aligned with ``bars``).

        Raises:
            KafkaException: a record was not delivered.
        """
        records = (
            bar_record(bar, self._topics[bar.interval], receipt)
            for bar, receipt in zip(bars, receipt_times, strict=True)
        )
        produce_all(self._producer, records)

    def close(self) -> None:
        self._producer.flush(FLUSH_TIMEOUT_S)
        self._producer.close()
