"""Prometheus metrics of ``tickflow stream bars`` (served on ``bars_metrics_port``).

Per micro-batch figures (incl. consumer lag per query and topic) come from Spark's query progress (a
``StreamingQueryListener``, also installed by the indicator job); bars written,
freshness and rejected/stored ticks from the batch writers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from prometheus_client import Counter, Gauge, Histogram
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQueryListener
from pyspark.sql.streaming.listener import (
    QueryIdleEvent,
    QueryProgressEvent,
    QueryStartedEvent,
    QueryTerminatedEvent,
)

from streaming_jobs.lag import spark_lag

BATCH_INPUT_ROWS: Final = Gauge(
    "tickflow_bars_batch_input_rows", "Kafka records read by the last micro-batch.", ["query"]
)
INPUT_ROWS: Final = Counter("tickflow_bars_input_rows", "Kafka records read by micro-batches.", ["query"])
BATCH_SECONDS: Final = Histogram(
    "tickflow_bars_batch_duration_seconds",
    "Wall time of a micro-batch (read, aggregate, write every sink).",
    ["query"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
LATE_ROWS_DROPPED: Final = Counter(
    "tickflow_bars_late_rows_dropped",
    "Late (tick, interval) rows dropped because their window ended at or before the watermark "
    "(Spark's numRowsDroppedByWatermark: late ticks of one window in one batch and Kafka partition count "
    "once, a tick late for several intervals once per interval).",
)
DUPLICATES_DROPPED: Final = Counter(
    "tickflow_bars_duplicates_dropped",
    "Tick records dropped as copies of a trade (same exchange, symbol, trade_id) already counted within "
    "the watermark (Spark's numDroppedDuplicateRows).",
)
WATERMARK: Final = Gauge(
    "tickflow_bars_watermark_seconds", "Event-time watermark of the bars query (Unix s)."
)
BARS_WRITTEN: Final = Counter(
    "tickflow_bars_written", "Bar revisions written to every sink (incl. finalisations).", ["interval"]
)
FRESHNESS: Final = Histogram(
    "tickflow_bars_freshness_seconds",
    "Bar freshness: time from a bar's window end until the revision is visible in Redis, for revisions "
    "written after their window ended.",
    ["interval"],
    buckets=(0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60, 300, 3600),
)
TICKS_REJECTED: Final = Counter(
    "tickflow_bars_ticks_rejected", "Tick records sent to the dead-letter topic.", ["reason"]
)
CONSUMER_LAG: Final = Gauge(
    "tickflow_bars_consumer_lag_records",
    "Records a Spark query is behind the end of a topic at its last micro-batch (the source's latestOffset "
    "minus the batch's endOffset, summed over partitions; Spark keeps its offsets in the checkpoint).",
    ["query", "topic"],
)
TICKS_STORED: Final = Counter("tickflow_bars_ticks_stored", "Valid ticks offered to tick_data.")

_INSTALLED: set[int] = set()


class ProgressMetrics(StreamingQueryListener):
    """Turns every query progress event into the per-batch metrics above."""

    def onQueryStarted(self, event: QueryStartedEvent) -> None:
        """Nothing to record."""

    def onQueryIdle(self, event: QueryIdleEvent) -> None:
        """Nothing to record."""

    def onQueryTerminated(self, event: QueryTerminatedEvent) -> None:
        """Nothing to record."""

    def onQueryProgress(self, event: QueryProgressEvent) -> None:
        progress = event.progress
        name = progress.name or "unnamed"
        BATCH_INPUT_ROWS.labels(name).set(progress.numInputRows)
        INPUT_ROWS.labels(name).inc(progress.numInputRows)
        BATCH_SECONDS.labels(name).observe(progress.batchDuration / 1000.0)
        dropped = sum(op.numRowsDroppedByWatermark for op in progress.stateOperators)
        if dropped:
            LATE_ROWS_DROPPED.inc(dropped)
        duplicates = sum(op.customMetrics.get("numDroppedDuplicateRows", 0) for op in progress.stateOperators)
        if duplicates:
            DUPLICATES_DROPPED.inc(duplicates)
        for source in progress.sources:
            for topic, records in spark_lag(source.endOffset, source.latestOffset).items():
                CONSUMER_LAG.labels(name, topic).set(records)
        watermark = progress.eventTime.get("watermark")
        if progress.stateOperators and watermark:
            WATERMARK.set(datetime.fromisoformat(watermark.replace("Z", "+00:00")).timestamp())


def install_progress_metrics(spark: SparkSession) -> None:
    """Register ``ProgressMetrics`` on ``spark`` once."""
    if id(spark) not in _INSTALLED:
        spark.streams.addListener(ProgressMetrics())
        _INSTALLED.add(id(spark))
