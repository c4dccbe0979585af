"""A Spark streaming source over Kafka written as a PySpark Python DataSource (``pyspark.sql.datasource``).

Used when Spark's own Kafka connector (``spark-sql-kafka-0-10``) is not on the classpath. It produces the
same columns as ``format("kafka")`` (``RAW_SCHEMA``): ``key``/``value`` bytes, ``topic``, ``partition``,
``offset``, ``timestamp`` (the record timestamp, UTC, millisecond resolution) and ``timestampType``.

Offsets are ``{"<topic>-<partition>": next_offset}`` (the next offset to read, exclusive end of the last
batch); Spark keeps them in its checkpoint, so a restarted query resumes exactly where the last committed
batch ended and a failed batch is re-read with the same offsets. One Spark input partition reads one Kafka
partition.

End offsets: Kafka's ListOffsets(latest) is the obvious answer, but some Kafka-compatible brokers (the
embedded Tansu broker used locally) answer with the base offset of the last record batch + 1, which is too
low. The high watermark in a fetch response is right on both. So the end of a partition is found by one
small fetch (``max.partition.fetch.bytes`` = 1: the broker still returns one record batch) from an offset
known to exist, taking the larger of that response's high watermark (``get_watermark_offsets(cached=True)``)
and the last offset received + 1. ``latestOffset`` fetches from the batch's start offsets; without one
(first batch, ``availableNow`` target, a new partition) it fetches from the start of the last record batch
as ListOffsets has it (``listed - 1``; ``listed`` is a lower bound). Each batch's end offset is therefore an
offset that really exists, and ``read`` stops exactly there.

The driver-side calls (``initialOffset``, ``latestOffset``, ``partitions``, ``commit``) run in a Python
process started by the JVM and keep one probe consumer; ``read`` runs in Python workers with a fresh reader
and a consumer kept per worker process. Neither joins a consumer group nor commits offsets to Kafka.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxRows,
    SupportsTriggerAvailableNow,
)
from pyspark.sql.types import (
    BinaryType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

SOURCE_NAME: Final = "tickflow_kafka"

RAW_SCHEMA: Final = StructType(
    [
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("timestamp", TimestampType()),
        StructField("timestampType", IntegerType()),
    ]
)
"""The columns of Spark's ``format("kafka")`` source, in its order."""

RAW_COLUMNS: Final[tuple[str, ...]] = tuple(RAW_SCHEMA.fieldNames())
_ARROW_SCHEMA: Final = to_arrow_schema(RAW_SCHEMA, timezone="UTC")

ARROW_BATCH_ROWS: Final = 50_000
"""Rows per ``pyarrow.RecordBatch`` yielded by ``read``."""

_CONSUME_BATCH: Final = 10_000
_POLL_S: Final = 0.02  # consume() waits this long for a full batch; EOF does not end the wait


@dataclass(frozen=True)
class KafkaSourceOptions:
    """Options of the ``tickflow_kafka`` source (all given as strings through ``.option(...)``).

    - ``bootstrap_servers`` (required), ``topic`` (required, one topic).
    - ``starting_offsets``: ``earliest`` (default) or ``latest``, for partitions without a checkpointed
      offset.
    - ``max_rows_per_batch``: upper bound of records per micro-batch (0 = no bound), spread over the
      partitions in proportion to their backlog.
    - ``fetch_wait_ms``: ``fetch.wait.max.ms`` of the consumers (low values give low latency).
    - ``timeout_s``: how long a metadata request or a read may go without progress before it fails.
    """

    bootstrap_servers: str
    topic: str
    starting_offsets: str = "earliest"
    max_rows_per_batch: int = 0
    fetch_wait_ms: int = 20
    timeout_s: float = 30.0

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> KafkaSourceOptions:
        """Read the options Spark hands to the data source.

        Raises:
            ValueError: a required option is missing or a value is invalid.
        """
        missing = [name for name in ("bootstrap_servers", "topic") if not options.get(name)]
        if missing:
            raise ValueError(f"{SOURCE_NAME}: missing option(s) {', '.join(missing)}")
        parsed = cls(
            bootstrap_servers=options["bootstrap_servers"],
            topic=options["topic"],
            starting_offsets=options.get("starting_offsets", "earliest"),
            max_rows_per_batch=int(options.get("max_rows_per_batch", "0")),
            fetch_wait_ms=int(options.get("fetch_wait_ms", "20")),
            timeout_s=float(options.get("timeout_s", "30")),
        )
        if parsed.starting_offsets not in ("earliest", "latest"):
            raise ValueError(f"{SOURCE_NAME}: starting_offsets must be earliest or latest")
        return parsed

    def consumer(self, **extra: Any) -> Consumer:
        """A consumer that only uses ``assign`` (no group membership, no commits)."""
        config = {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": f"tickflow-spark-{uuid.uuid4().hex[:8]}",  # required by librdkafka, never joined
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "error",  # an offset the broker no longer has fails loudly, never skips
            "fetch.wait.max.ms": self.fetch_wait_ms,
            "fetch.max.bytes": 52_428_800,
            "max.partition.fetch.bytes": 10_485_760,
            **extra,
        }
        return Consumer(config)


def offset_key(topic: str, partition: int) -> str:
    """Key of a partition in the offset dict: ``"<topic>-<partition>"``."""
    return f"{topic}-{partition}"


def split_read_limit(start: Mapping[str, int], end: Mapping[str, int], max_rows: int) -> dict[str, int]:
    """End offsets that read at most ``max_rows`` records beyond ``start``, spread over the partitions in
    proportion to their backlog (every partition with a backlog advances by at least one record).
    """
    backlog = {key: end[key] - start.get(key, end[key]) for key in end}
    total = sum(b for b in backlog.values() if b > 0)
    if total <= max_rows:
        return dict(end)
    capped = {}
    for key, offset in end.items():
        lag = backlog[key]
        if lag <= 0:
            capped[key] = offset
        else:
            capped[key] = start[key] + max(1, lag * max_rows // total)
    return capped


class KafkaPartition(InputPartition):
    """Records ``[start, end)`` of one Kafka partition."""

    def __init__(self, topic: str, partition: int, start: int, end: int) -> None:
        super().__init__((topic, partition, start, end))
        self.topic = topic
        self.partition = partition
        self.start = start
        self.end = end


class KafkaStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Micro-batch reader of one topic; see the module docstring for the offset protocol."""

    def __init__(self, options: KafkaSourceOptions) -> None:
        self.options = options
        self._probe: Consumer | None = None
        self._target: dict[str, int] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"options": self.options, "_probe": None, "_target": self._target}

    # --- driver side -------------------------------------------------------------------------------
    def initialOffset(self) -> dict[str, int]:
        if self.options.starting_offsets == "earliest":
            low, _ = self._bounds(self._partitions())
            return low
        return self._end_offsets()

    def getDefaultReadLimit(self) -> ReadLimit:
        if self.options.max_rows_per_batch > 0:
            return ReadMaxRows(self.options.max_rows_per_batch)
        return ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        self._target = self._end_offsets()

    def latestOffset(self, start: dict[str, int], limit: ReadLimit) -> dict[str, int]:
        end = self._target if self._target is not None else self._end_offsets(start)
        begin = {key: start.get(key, 0) for key in end}
        end = {key: max(offset, begin[key]) for key, offset in end.items()}
        if isinstance(limit, ReadMaxRows):
            return split_read_limit(begin, end, limit.max_rows)
        return end

    def reportLatestOffset(self) -> dict[str, int] | None:
        return self._target

    def partitions(self, start: dict[str, int], end: dict[str, int]) -> Sequence[KafkaPartition]:
        topic = self.options.topic
        result = []
        for key, stop in sorted(end.items(), key=lambda item: int(item[0].rsplit("-", 1)[1])):
            begin = start.get(key, 0)
            if stop > begin:
                result.append(KafkaPartition(topic, int(key.rsplit("-", 1)[1]), begin, stop))
        return result

    def commit(self, end: dict[str, int]) -> None:
        """Nothing to do: the offsets live in Spark's checkpoint."""

    def stop(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None

    def _consumer(self) -> Consumer:
        if self._probe is None:  # one record batch per partition is all a probe needs
            self._probe = self.options.consumer(
                **{"max.partition.fetch.bytes": 1, "auto.offset.reset": "earliest"}
            )
        return self._probe

    def _partitions(self) -> dict[str, int]:
        """``{offset key: partition id}`` of the topic's partitions (from fresh metadata)."""
        metadata = self._consumer().list_topics(self.options.topic, timeout=self.options.timeout_s)
        topic = metadata.topics.get(self.options.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            problem = topic.error if topic is not None else "unknown topic"
            raise RuntimeError(f"{SOURCE_NAME}: topic {self.options.topic!r} is not available: {problem}")
        return {offset_key(self.options.topic, p): p for p in sorted(topic.partitions)}

    def _bounds(self, partitions: Mapping[str, int]) -> tuple[dict[str, int], dict[str, int]]:
        """(low watermarks, listed high watermarks) of ``partitions``, from ListOffsets."""
        consumer, topic = self._consumer(), self.options.topic
        low, listed = {}, {}
        for key, partition in partitions.items():
            lo, hi = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=self.options.timeout_s, cached=False
            )
            low[key] = max(lo, 0)
            listed[key] = max(hi, lo, 0)
        return low, listed

    def _end_offsets(self, known: Mapping[str, int] | None = None) -> dict[str, int]:
        """The true end offset (last offset + 1) of every partition.

        ``known``: offsets known to exist (the start of the next batch). The probe fetches once from there,
        or, for partitions without one, from the start of the last record batch according to ListOffsets
        (``listed - 1``), and takes the larger of the fetch response's high watermark and the last offset
        received + 1 (see the module docstring).
        """
        consumer, topic = self._consumer(), self.options.topic
        partitions = self._partitions()
        probe_at = {key: known[key] for key in partitions if known is not None and key in known}
        ends = dict(probe_at)
        if len(probe_at) < len(partitions):
            low, listed = self._bounds({k: p for k, p in partitions.items() if k not in probe_at})
            probe_at |= {key: max(listed[key] - 1, low[key]) for key in listed}
            ends |= listed
        consumer.assign([TopicPartition(topic, partitions[key], offset) for key, offset in probe_at.items()])
        pending = set(partitions.values())
        deadline = time.monotonic() + self.options.timeout_s
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(_CONSUME_BATCH, _POLL_S):
                partition, error = message.partition(), message.error()
                if error is None:
                    key = offset_key(topic, partition)
                    ends[key] = max(ends[key], message.offset() + 1)
                elif error.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(error)
                # one fetch response (records or end of partition) has updated the cached high watermark
                pending.discard(partition)
        for key, partition in partitions.items():
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            ends[key] = max(ends[key], high)
        consumer.unassign()
        return ends

    # --- worker side -------------------------------------------------------------------------------
    def read(self, partition: KafkaPartition) -> Iterator[pa.RecordBatch]:  # type: ignore[override]
        """Yield the records ``[partition.start, partition.end)`` as Arrow batches of ``RAW_SCHEMA``.

        Raises:
            RuntimeError: the records are no longer on the broker (retention, a broker restart with
                in-memory storage) or no progress was made for ``timeout_s``.
        """
        consumer = _worker_consumer(self.options)
        done = False
        try:
            consumer.assign([TopicPartition(partition.topic, partition.partition, partition.start)])
            yield from _read_range(consumer, partition, self.options.timeout_s)
            done = True
        finally:
            if done:
                consumer.unassign()
            else:
                _WORKER_CONSUMERS.pop(self.options, None)
                consumer.close()


_WORKER_CONSUMERS: dict[KafkaSourceOptions, Consumer] = {}
"""One consumer per options in each (reused) Python worker process, re-assigned by every ``read``: a new
consumer per task would pay a broker connection and metadata round trip on every micro-batch."""


def _worker_consumer(options: KafkaSourceOptions) -> Consumer:
    consumer = _WORKER_CONSUMERS.get(options)
    if consumer is None:
        consumer = _WORKER_CONSUMERS[options] = options.consumer()
    return consumer


def _read_range(consumer: Consumer, part: KafkaPartition, timeout_s: float) -> Iterator[pa.RecordBatch]:
    chunk: list[Message] = []
    next_offset = part.start
    deadline = time.monotonic() + timeout_s
    while next_offset < part.end:
        messages = consumer.consume(min(_CONSUME_BATCH, part.end - next_offset), _POLL_S)
        if messages:
            deadline = time.monotonic() + timeout_s
        elif time.monotonic() > deadline:
            raise RuntimeError(f"{SOURCE_NAME}: no progress reading {part.value} (at offset {next_offset})")
        records = [m for m in messages if m.error() is None]
        if len(records) < len(messages):
            _check_end_of_partition(consumer, part, [m for m in messages if m.error() is not None])
            next_offset = part.end  # the offsets left are transaction markers or compacted away
        wanted = [m for m in records if part.start <= m.offset() < part.end]
        if wanted:
            chunk.extend(wanted)
            next_offset = max(next_offset, wanted[-1].offset() + 1)
        if len(wanted) < len(records) and records[-1].offset() >= part.end:
            next_offset = part.end
        if len(chunk) >= ARROW_BATCH_ROWS:
            yield _to_batch(chunk, part)
            chunk = []
    if chunk:
        yield _to_batch(chunk, part)


def _check_end_of_partition(consumer: Consumer, part: KafkaPartition, errors: list[Message]) -> None:
    """Raise unless ``errors`` are end-of-partition events of a partition that really reaches ``part.end``."""
    for message in errors:
        error = message.error()
        if error.code() != KafkaError._PARTITION_EOF:
            raise KafkaException(error)
    _, high = consumer.get_watermark_offsets(TopicPartition(part.topic, part.partition), cached=True)
    if high < part.end:
        raise RuntimeError(
            f"{SOURCE_NAME}: {part.value} ends at {high} on the broker, before {part.end} "
            "(records lost: retention or a broker restart)"
        )


def _to_batch(messages: list[Message], part: KafkaPartition) -> pa.RecordBatch:
    """``RAW_SCHEMA`` columns of ``messages`` (record timestamps in ms -> µs; Spark's ``timestampType``:
    0 = CreateTime, 1 = LogAppendTime)."""
    count = len(messages)
    stamps = [m.timestamp() for m in messages]
    columns = [
        [m.key() for m in messages],
        [m.value() for m in messages],
        [part.topic] * count,
        [part.partition] * count,
        [m.offset() for m in messages],
        [millis * 1000 if millis >= 0 else None for _, millis in stamps],
        [kind - 1 if kind > 0 else -1 for kind, _ in stamps],
    ]
    arrays = [pa.array(col, type=field.type) for col, field in zip(columns, _ARROW_SCHEMA, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=_ARROW_SCHEMA)


class KafkaStreamSource(DataSource):
    """``spark.readStream.format("tickflow_kafka").option("bootstrap_servers", ...).option("topic", ...)``.

    Register it once per session with ``spark.dataSource.register(KafkaStreamSource)``.
    """

    @classmethod
    def name(cls) -> str:
        return SOURCE_NAME

    def schema(self) -> StructType:
        return RAW_SCHEMA

    def streamReader(self, schema: StructType) -> KafkaStreamReader:
        return KafkaStreamReader(KafkaSourceOptions.parse(self.options))
