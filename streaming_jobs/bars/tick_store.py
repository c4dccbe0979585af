"""The ``foreachBatch`` function of the ticks query: rejected records -> dead-letter topic, valid ticks ->
``tick_data`` (so the API can serve raw ticks).

It runs as a second streaming query of the same application, with its own checkpoint, over the same topic:
the bars query cannot hand its raw ticks to a sink (its output is the aggregation). Writes are idempotent
(``ON CONFLICT DO NOTHING`` on the tick's primary key); a re-run batch may send its dead letters again
(the dead-letter topic is at-least-once; each record names its source topic, partition and offset).
The tick rows go to PostgreSQL from the executors (``mapInArrow``: COPY into a temporary table, then
INSERT ... ON CONFLICT DO NOTHING), so they never pass through the driver; only rejected records do. With
``stream_store_ticks`` off the query only filters the rejected records (in the JVM) for the DLQ.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import structlog
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import LongType, StringType, StructField, StructType

from streaming_jobs.bars import metrics
from streaming_jobs.bars.parse import REJECT_COLUMNS, rejected_records
from streaming_jobs.bars.sinks.postgres import TICK_DATA_COLUMNS, insert_ticks, ping
from streaming_jobs.bars.sinks.retry import Refused, SinkRetries, with_retries
from streaming_jobs.source import RAW_SCHEMA
from tickflow.clients import postgres_dsn
from tickflow.dead_letter import DeadLetter, raw_text
from tickflow.kafka import Record, make_producer, produce_all
from tickflow.schemas import json_dumps
from tickflow.settings import Settings
from tickflow.validity import DlqReason

log = structlog.get_logger(__name__)

DLQ_STAGE = "bars"
_UTC_MICROS = pa.timestamp("us", tz="UTC")
_OUTPUT_TYPE = StructType(
    [StructField(n, StringType()) if n in ("reason", "detail") else RAW_SCHEMA[n] for n in REJECT_COLUMNS]
    + [StructField("stored", LongType())]
)
"""Rows the executors return: rejected records (``stored`` null) and per task one count (the rest null)."""
_OUTPUT_SCHEMA = to_arrow_schema(_OUTPUT_TYPE, timezone="UTC")
_ALWAYS = frozenset({"reason", "partition", "offset"})
"""Columns of the record every row keeps (the rest of the record goes to Python only when rejected)."""


def dead_letter(row: dict[str, Any], dlq_topic: str) -> Record:
    """The dead-letter record (``tickflow.dead_letter.DeadLetter``, stage ``bars``) of a rejected tick
    record, keyed like the original; ``raw`` is the value as text, ``timestamp`` the record's."""
    letter = DeadLetter.of(
        DLQ_STAGE,
        row["reason"],
        row["detail"],
        raw_text(row["value"] or b""),
        topic=row["topic"],
        partition=row["partition"],
        offset=row["offset"],
        timestamp=row["timestamp"],
    )
    return dlq_topic, row["key"], letter.to_wire()


def _store_and_reject(settings: Settings, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Executor side, per Arrow batch of ``parse_ticks`` output: insert the valid ticks into ``tick_data``,
    yield the rejected records; finally one row with the stored count."""
    stored = 0
    for batch in batches:
        valid = pc.is_null(batch.column("reason"))
        ticks = batch.filter(valid)
        columns = [
            pc.cast(ticks.column(n), _UTC_MICROS) if n.endswith("_time") else ticks.column(n)
            for n in TICK_DATA_COLUMNS
        ]
        rows = pa.RecordBatch.from_arrays(columns, names=list(TICK_DATA_COLUMNS))
        count, refused = _insert_isolating(settings, rows)
        stored += count
        if refused:
            yield _refused_output(ticks, rows, refused)
        rejected = batch.filter(pc.invert(valid))
        if rejected.num_rows:
            yield _output(rejected.select(list(REJECT_COLUMNS)), None)
    yield _output(None, stored)


def _insert_isolating(settings: Settings, rows: pa.RecordBatch) -> tuple[int, dict[int, str]]:
    """Insert ``rows`` into ``tick_data`` (transient failures retried); when the database refuses the data,
    halve the batch until the refused rows are isolated. Returns (rows stored, {row index: error})."""
    try:
        return with_retries(settings, "tick_data", insert_ticks, postgres_dsn(settings), rows), {}
    except Refused as exc:
        if rows.num_rows == 1:
            return 0, {0: str(exc)}
    half = rows.num_rows // 2
    stored, refused = _insert_isolating(settings, rows.slice(0, half))
    more, later = _insert_isolating(settings, rows.slice(half))
    return stored + more, refused | {half + index: error for index, error in later.items()}


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _refused_output(ticks: pa.RecordBatch, rows: pa.RecordBatch, refused: dict[int, str]) -> pa.RecordBatch:
    """Dead-letter rows (``store_rejected``) for the ticks the database refused: the tick as JSON text."""
    indexes = pa.array(sorted(refused), pa.int64())
    records = rows.take(indexes).to_pylist()
    source = ticks.take(indexes)
    values = [json_dumps({k: _plain(v) for k, v in r.items()}) for r in records]
    columns = {
        "reason": pa.array([DlqReason.STORE_REJECTED.value] * len(records)),
        "detail": pa.array([f"tick_data refused the tick: {refused[i]}" for i in sorted(refused)]),
        "key": pa.array([r["symbol"].encode() for r in records], pa.binary()),
        "value": pa.array(values, pa.binary()),
        "topic": pa.nulls(len(records), pa.string()),
        "partition": source.column("partition"),
        "offset": source.column("offset"),
        "timestamp": pa.nulls(len(records), _UTC_MICROS),
    }
    return _output(pa.RecordBatch.from_pydict({n: columns[n] for n in REJECT_COLUMNS}), None)


def _output(rejected: pa.RecordBatch | None, stored: int | None) -> pa.RecordBatch:
    if rejected is None:
        columns = [pa.nulls(1, field.type) for field in _OUTPUT_SCHEMA][:-1]
        return pa.RecordBatch.from_arrays([*columns, pa.array([stored], pa.int64())], schema=_OUTPUT_SCHEMA)
    counts = pa.nulls(rejected.num_rows, pa.int64())
    columns = [c.cast(f.type) for c, f in zip(rejected.columns, _OUTPUT_SCHEMA, strict=False)]
    return pa.RecordBatch.from_arrays([*columns, counts], schema=_OUTPUT_SCHEMA)


class TickBatchWriter:
    """Sends rejected records to the dead-letter topic and stores valid ticks in ``tick_data``."""

    def __init__(self, settings: Settings, stopping: threading.Event | None = None) -> None:
        """``stopping``: the job's stop event; once set, a write of the driver waiting for a store gives up
        (``SinkRetries``)."""
        self.settings = settings
        self._retry = SinkRetries(settings, stopping)
        self._producer = make_producer(settings, "tickflow-bars-dlq")

    def __call__(self, parsed: DataFrame, batch_id: int) -> None:
        """``parsed``: one micro-batch of ``parse.parse_ticks`` output. One pass over it: the executors
        store the valid ticks and return the rejected records, which the driver sends to the DLQ."""
        if self.settings.stream_store_ticks:
            # wait out a PostgreSQL outage here, so that no executor core is held by a task waiting for it
            self._retry("tick_data", ping, postgres_dsn(self.settings))
            is_rejected = ~F.col("valid")
            slim = parsed.select(  # the Kafka record goes to Python only when it is rejected
                *TICK_DATA_COLUMNS,
                *[
                    F.when(is_rejected, F.col(c)).alias(c) if c not in _ALWAYS else F.col(c)
                    for c in REJECT_COLUMNS
                ],
            )
            output = slim.mapInArrow(partial(_store_and_reject, self.settings), _OUTPUT_TYPE).toArrow()
            metrics.TICKS_STORED.inc(int(pc.sum(output.column("stored")).as_py() or 0))
        else:
            output = rejected_records(parsed).toArrow()
        rejected = output.filter(pc.is_valid(output.column("reason"))).to_pylist()
        if rejected:
            topic, dlq = self.settings.topic_ticks, self.settings.topic_dlq
            letters = [dead_letter({**row, "topic": row["topic"] or topic}, dlq) for row in rejected]
            self._retry("dlq", produce_all, self._producer, letters)
            for row in rejected:
                metrics.TICKS_REJECTED.labels(row["reason"]).inc()
            log.warning("tick records rejected", batch_id=batch_id, count=len(rejected))

    def close(self) -> None:
        self._producer.flush(30)
        self._producer.close()
