"""Kafka writer of bar revisions on ``bars_{1m,5m,15m}`` (key = symbol)."""

from __future__ import annotations

from collections.abc import Sequence

from tickflow.kafka import FLUSH_TIMEOUT_S, Record, make_producer, produce_all
from tickflow.schemas import OHLCVBar, json_dumps
from tickflow.settings import Settings


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
        self._producer = make_producer(settings, "tickflow-bars")
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
