"""The bar application: two streaming queries over ``topic_ticks`` in one Spark application.

- ``bars``: parse -> valid ticks -> ``withWatermark(watermark)`` -> 1/5/15-minute bars (update output mode)
  -> ``foreachBatch`` ``BarBatchWriter`` (PostgreSQL, Redis, InfluxDB, Kafka);
- ``ticks``: parse -> ``foreachBatch`` ``TickBatchWriter`` (dead-letter topic, ``tick_data``).

Checkpoints: ``<checkpoint_dir>/bars`` and ``<checkpoint_dir>/ticks``. Triggers: every ``trigger_interval``
(bars) and ``ticks_trigger_interval`` (ticks) when continuous, or ``availableNow`` (read what the topic holds
now, then stop).

Run it with ``tickflow stream bars [--available-now]``, or on a cluster through spark-submit (see
``infra/docker/spark_app.py``). A checkpoint whose offsets the topic no longer has stops the job with
``streaming_jobs.checkpoints.CheckpointMismatch`` (fix: ``tickflow stream reset bars``).
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Final

import structlog
from prometheus_client import start_http_server
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from streaming_jobs.bars.aggregate import compute_bars
from streaming_jobs.bars.finality import delay_ms
from streaming_jobs.bars.metrics import install_progress_metrics
from streaming_jobs.bars.parse import parse_ticks, valid_ticks
from streaming_jobs.bars.tick_store import TickBatchWriter
from streaming_jobs.bars.writer import BarBatchWriter
from streaming_jobs.checkpoints import checkpoint, exclusive, mismatch
from streaming_jobs.source import read_topic
from streaming_jobs.spark_session import build_spark
from tickflow.settings import Settings

log = structlog.get_logger(__name__)

BARS_QUERY: Final = "bars"
TICKS_QUERY: Final = "ticks"
STOP_WAIT_S: Final = 60.0


@dataclass
class BarJob:
    """The running queries of the bar application and their batch writers."""

    queries: list[StreamingQuery]
    writers: list[BarBatchWriter | TickBatchWriter] = field(default_factory=list)

    def wait(self, stop: threading.Event | None = None, poll_s: float = 0.5) -> None:
        """Block until every query has terminated or ``stop`` is set (then stop them between batches).

        A batch that fails once ``stop`` is set (its writers gave up waiting for a store: ``SinkRetries``)
        ends its query without an error: the next start re-runs it.

        Raises:
            pyspark.errors.StreamingQueryException: a query failed (e.g. a sink kept failing).
        """
        try:
            while any(q.isActive for q in self.queries):
                if stop is not None and stop.is_set():
                    self.stop()
                    break
                for query in self.queries:
                    if query.exception() is not None:
                        query.awaitTermination()  # raises the query's error
                time.sleep(poll_s)
            for query in self.queries:
                if stop is not None and stop.is_set() and query.exception() is not None:
                    log.warning("query stopped during a batch; the next start re-runs the batch",
                                query=query.name)  # fmt: skip
                    continue
                query.awaitTermination()
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop every query, between micro-batches where possible, and close the writers."""
        for query in self.queries:
            deadline = time.monotonic() + STOP_WAIT_S
            while query.isActive and query.status["isTriggerActive"] and time.monotonic() < deadline:
                time.sleep(0.1)
            if query.isActive:
                query.stop()
        for writer in self.writers:
            writer.close()
        self.writers.clear()


def _trigger(writer: DataStreamWriter, interval: str, available_now: bool) -> DataStreamWriter:
    if available_now:
        return writer.trigger(availableNow=True)
    return writer.trigger(processingTime=interval)


def start_bar_job(
    spark: SparkSession,
    settings: Settings,
    *,
    available_now: bool = False,
    stopping: threading.Event | None = None,
) -> BarJob:
    """Start the ``bars`` and ``ticks`` queries on ``spark`` (the ticks query always runs: it owns the
    dead-letter topic; ``stream_store_ticks`` only decides whether it also fills ``tick_data``).

    ``stopping``: the event that will stop the job (``BarJob.wait``); once it is set, a batch waiting for a
    store gives up (``SinkRetries``), so the job stops within seconds during an outage."""
    parsed: DataFrame = parse_ticks(
        read_topic(spark, settings, settings.topic_ticks), settings.max_clock_skew_s
    )
    bars = compute_bars(
        valid_ticks(parsed), settings.interval_list, settings.watermark, delay_ms(settings.watermark)
    )
    bar_writer = BarBatchWriter(settings, stopping)
    tick_writer = TickBatchWriter(settings, stopping)
    bar_stream = (
        bars.writeStream.queryName(BARS_QUERY)
        .outputMode("update")
        .foreachBatch(bar_writer)
        .option("checkpointLocation", checkpoint(settings, BARS_QUERY))
    )
    tick_stream = (
        parsed.writeStream.queryName(TICKS_QUERY)
        .outputMode("append")
        .foreachBatch(tick_writer)
        .option("checkpointLocation", checkpoint(settings, TICKS_QUERY))
    )
    job = BarJob([], [bar_writer, tick_writer])
    context = spark.sparkContext
    for name, stream, interval in (
        (BARS_QUERY, bar_stream, settings.trigger_interval),
        (TICKS_QUERY, tick_stream, settings.ticks_trigger_interval),
    ):
        # a query's thread inherits the pool: with FAIR scheduling the bars' tasks never wait for a whole
        # stage of the ticks query (whose trigger fires at the same window boundaries)
        context.setLocalProperty("spark.scheduler.pool", name)
        job.queries.append(_trigger(stream, interval, available_now).start())
    context.setLocalProperty("spark.scheduler.pool", None)  # type: ignore[arg-type]
    log.info("bar job started", available_now=available_now, checkpoint=str(settings.checkpoint_dir))
    return job


def run(settings: Settings, *, available_now: bool = False, serve_metrics: bool = True) -> None:
    """Run the bar application until it is done (``available_now``), stopped (SIGTERM/SIGINT) or fails.

    Raises:
        streaming_jobs.checkpoints.CheckpointInUse: another process runs the job on these checkpoints.
        streaming_jobs.checkpoints.CheckpointMismatch: a checkpoint holds offsets its topic no longer has.
        pyspark.errors.StreamingQueryException: a query failed; the next run re-runs the failed batch.
    """
    with exclusive(settings, "bars"):
        _run(settings, available_now=available_now, serve_metrics=serve_metrics)


def stop_on_signals() -> threading.Event:
    """An event that SIGTERM and SIGINT set: the stop of a job (``BarJob.wait``, ``SinkRetries``)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _run(settings: Settings, *, available_now: bool, serve_metrics: bool) -> None:
    spark = build_spark(settings, "tickflow-bars")
    if serve_metrics:
        start_http_server(settings.bars_metrics_port, addr=settings.metrics_bind_host)
    install_progress_metrics(spark)
    stop = stop_on_signals()
    job = start_bar_job(spark, settings, available_now=available_now, stopping=stop)
    try:
        job.wait(stop)
    except StreamingQueryException as exc:
        raise mismatch(exc, "bars", settings) or exc from exc
    finally:
        spark.stop()  # before Python exits: no listener call-back then reaches an interpreter shutting down
    log.info("bar job stopped")
