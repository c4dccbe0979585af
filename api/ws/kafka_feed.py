"""The WebSocket fast path: ticks straight from the Kafka tick topic to subscribers, bypassing Spark.

A thread reads every partition of ``Settings.topic_ticks`` by manual assignment (no consumer group, no
commits: each API process reads the whole topic) and hands each polled batch, grouped by symbol, to the
event loop. It starts at the end of the topic: partitions are assigned at ``OFFSET_END`` and, because some
brokers answer that look-up with a stale offset (Tansu: one producer batch behind), every record below the
high watermark reported by the first fetch of a partition is skipped. The app waits for this positioning
before it accepts connections, so no subscriber ever sees a tick produced before the process started.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

import orjson
import structlog
from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

from api.metrics import ApiMetrics
from tickflow.latency import Stage
from tickflow.settings import Settings

log = structlog.get_logger(__name__)

BATCH_MAX = 1000
POLL_TIMEOUT_S = 0.1
METADATA_RETRY_S = 1.0


class TickBatch(dict[str, list[bytes]]):
    """Tick wire records (JSON bytes) by symbol, in partition order; ``append_ms``: the broker append time
    of its oldest record (ms since the epoch; None when unknown), for the fast-path latency."""

    append_ms: int | None = None


class TickFeed:
    """Consumes the tick topic on a daemon thread and calls ``deliver(batch)`` for every polled batch.

    ``deliver`` is called on the feed's thread; it must hand over to the event loop itself.
    """

    def __init__(self, settings: Settings, deliver: Callable[[TickBatch], None], metrics: ApiMetrics) -> None:
        self._settings = settings
        self._topic = settings.topic_ticks
        self._deliver = deliver
        self._metrics = metrics
        self.positioned = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tickflow-api-tick-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _config(self) -> dict[str, object]:
        return {
            "bootstrap.servers": self._settings.kafka_bootstrap_servers,
            # librdkafka needs a group id; assign() never joins the group and nothing is committed.
            "group.id": f"tickflow-api-{socket.gethostname()}-{os.getpid()}",
            "client.id": "tickflow-api",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "fetch.wait.max.ms": self._settings.api_kafka_fetch_wait_ms,
            "fetch.min.bytes": 1,
            "error_cb": lambda error: log.warning("kafka error (tick feed)", error=str(error)),
        }

    def _run(self) -> None:
        consumer = Consumer(self._config())
        try:
            partitions = self._partitions(consumer)
            if partitions:
                consumer.assign([TopicPartition(self._topic, p, OFFSET_END) for p in partitions])
                self._consume(consumer, partitions)
        except Exception:
            log.exception("tick feed stopped")
        finally:
            consumer.close()

    def _partitions(self, consumer: Consumer) -> list[int]:
        """Partition ids of the tick topic, waiting for it to exist (empty when stopped first)."""
        while not self._stop.is_set():
            try:
                metadata = consumer.list_topics(self._topic, timeout=5).topics.get(self._topic)
            except KafkaException as exc:
                log.warning("tick topic metadata unavailable", topic=self._topic, error=str(exc))
            else:
                if metadata is not None and metadata.error is None and metadata.partitions:
                    return sorted(metadata.partitions)
                log.warning("tick topic not found; waiting", topic=self._topic)
            self._stop.wait(METADATA_RETRY_S)
        return []

    def _consume(self, consumer: Consumer, partitions: list[int]) -> None:
        start: dict[int, int] = {}  # partition -> first offset to deliver
        while not self._stop.is_set():
            # Wait for one record, then take what is already fetched without waiting (consume() alone
            # would wait for BATCH_MAX records or the whole timeout).
            first_message = consumer.poll(POLL_TIMEOUT_S)
            messages = (
                [] if first_message is None else [first_message, *consumer.consume(BATCH_MAX, timeout=0)]
            )
            if len(start) < len(partitions):
                self._position(consumer, partitions, start)
            batch = TickBatch()
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("kafka fetch error (tick feed)", error=str(error))
                    continue
                first = start.get(message.partition())
                if first is None or message.offset() < first:
                    continue
                append_ms = message.timestamp()[1]
                symbol = self._symbol(message.key(), message.value(), append_ms)
                if symbol is not None:
                    batch.setdefault(symbol, []).append(message.value())
                    if append_ms > 0 and (batch.append_ms is None or append_ms < batch.append_ms):
                        batch.append_ms = append_ms
            if batch:
                self._metrics.ticks_consumed.inc(sum(len(v) for v in batch.values()))
                self._deliver(batch)

    def _position(self, consumer: Consumer, partitions: list[int], start: dict[int, int]) -> None:
        for partition in partitions:
            if partition in start:
                continue
            _low, high = consumer.get_watermark_offsets(TopicPartition(self._topic, partition), cached=True)
            if high >= 0:
                start[partition] = high
        if len(start) == len(partitions):
            self.positioned.set()
            log.info("tick feed positioned at the end of the topic", topic=self._topic, offsets=start)

    def _symbol(self, key: bytes | None, value: bytes | None, append_ms: int) -> str | None:
        """The record's symbol (its key, else the ``symbol`` field); None for a value that is not a JSON
        object (counted in ``tickflow_api_ticks_rejected_total``; the producers validate, so this is rare).

        Observes the broker stage per symbol: ``receipt_time`` (µs) -> the record's append time
        (``append_ms``, ms; the tick topic uses ``LogAppendTime``)."""
        try:
            payload = orjson.loads(value) if value else None
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            self._metrics.ticks_rejected.inc()
            return None
        symbol = key.decode("utf-8", "replace") if key else payload.get("symbol")
        if not isinstance(symbol, str):
            self._metrics.ticks_rejected.inc()
            return None
        receipt_us = payload.get("receipt_time")
        if isinstance(receipt_us, int) and append_ms > 0:
            self._metrics.latency.observe(Stage.BROKER, symbol, append_ms - receipt_us / 1000)
        return symbol
