"""The Kafka producer every source writes through (confluent-kafka / librdkafka).

Configured by ``tickflow.kafka.producer_config`` (durable, ordered, idempotent; the one configuration of
every stage's producers). When librdkafka's local queue is full, ``send`` serves delivery reports and
retries until there is room (``tickflow.kafka.produce_waiting``): back-pressure slows the source down
and never drops a record. Delivery failures (after librdkafka's own retries) are counted and logged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import orjson
import structlog
from confluent_kafka import KafkaError, Message

from producers import metrics
from tickflow.kafka import make_producer, produce_waiting
from tickflow.settings import Settings

log = structlog.get_logger(__name__)

POLL_EVERY: Final = 4096  # serve delivery and statistics callbacks after this many sends
STATS_INTERVAL_MS: Final = 5000


class TickProducer:
    """A confluent-kafka producer with back-pressure, delivery accounting and metrics.

    Only failed deliveries call back into Python (``delivery.report.only.error``): a callback per
    acknowledged record would cost a third of the throughput. So ``delivered`` is derived: records sent
    minus failed minus still queued; it is exact after ``flush``. Produce latency comes from librdkafka's
    own statistics (queue time and broker round trip, every 5 s) into
    ``tickflow_producer_latency_seconds``.
    """

    def __init__(self, settings: Settings, **config_overrides: Any) -> None:
        """``config_overrides``: librdkafka properties that replace Tickflow's (tests, tuning)."""
        self._producer = make_producer(
            settings,
            "tickflow-producer",
            **{
                "delivery.report.only.error": True,
                "statistics.interval.ms": STATS_INTERVAL_MS,
                **config_overrides,
                "on_delivery": self._on_failure,
                "stats_cb": self._on_stats,
            },
        )
        self.sent = 0
        self.failed = 0
        self.backpressure_waits = 0
        self._unpolled = 0
        self._published = 0

    @property
    def delivered(self) -> int:
        """Records acknowledged by the broker so far (exact once flushed)."""
        return self.sent - self.failed - len(self._producer)

    def send(self, topic: str, value: bytes, key: bytes) -> None:
        """Queue one record; blocks (serving callbacks) while the local queue is full.

        Raises:
            confluent_kafka.KafkaException: the record can never be sent (e.g. larger than
                ``message.max.bytes``) — a programming error, since tick and dead-letter records are bounded.
        """
        self.send_many(topic, (value,), (key,))

    def send_many(self, topic: str, values: Iterable[bytes], keys: Iterable[bytes]) -> int:
        """Queue each value with its key, in order; blocks while the local queue is full. Returns the count.

        Pass lazy iterables (``map(orjson.dumps, ticks)``): librdkafka copies each value, so a value that
        is not kept alive is freed at once and its memory reused — materialising a batch of values first
        costs more than serialising them.
        """
        produce = self._producer.produce
        count = 0
        for value, key in zip(values, keys, strict=True):
            try:
                produce(topic, value, key)
            except BufferError:
                produce_waiting(self._producer, topic, value, key, on_wait=self._count_wait)
            count += 1
        self.sent += count
        self._unpolled += count
        if self._unpolled >= POLL_EVERY:
            self.poll(0)
        return count

    def _count_wait(self) -> None:
        self.backpressure_waits += 1
        metrics.BACKPRESSURE_WAITS.inc()

    def _on_failure(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:  # only failures are reported; be safe if a success slips through
            return
        self.failed += 1
        metrics.DELIVERY_FAILURES.labels(msg.topic(), err.name()).inc()
        log.error("delivery failed", topic=msg.topic(), key=msg.key(), error=err.str())

    def _on_stats(self, stats_json: str) -> None:
        brokers = orjson.loads(stats_json).get("brokers", {}).values()
        for stage, name in (("queue", "int_latency"), ("request", "rtt")):
            windows = [b[name] for b in brokers if b.get(name, {}).get("cnt")]
            for quantile in ("p50", "p99"):
                if windows:
                    seconds = max(w[quantile] for w in windows) / 1e6
                    metrics.PRODUCE_LATENCY.labels(stage, quantile.replace("p", "0.")).set(seconds)

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve callbacks and publish delivery counts (call now and then when sending rarely)."""
        self._unpolled = 0
        self._producer.poll(timeout_s)
        self._publish_delivered()

    def _publish_delivered(self) -> None:
        delivered = self.delivered
        if delivered > self._published:
            metrics.DELIVERED.inc(delivered - self._published)
            self._published = delivered

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait until every queued record is acknowledged or failed; returns how many are still queued
        (0 unless the broker stayed unreachable for ``timeout_s``; those are logged)."""
        remaining = self._producer.flush(timeout_s)
        self._publish_delivered()
        if remaining:
            log.error("records still queued after flush", remaining=remaining, timeout_s=timeout_s)
        return remaining
