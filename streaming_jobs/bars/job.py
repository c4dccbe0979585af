"""The bar application: two streaming queries over ``topic_ticks`` in one Spark application.

- ``bars``: parse -> valid ticks -> ``withWatermark(watermark)`` -> 1/5/15-minute bars (update output mode)
  -> ``foreachBatch`` ``BarBatchWriter`` (PostgreSQL, Redis, InfluxDB, Kafka);
- ``ticks``: parse -> ``foreachBatch`` ``TickBatchWriter`` (dead-letter topic, ``tick_data``).

Checkpoints: ``<checkpoint_dir>/bars`` and ``<checkpoint_dir>/ticks``. Triggers: every ``trigger_interval``
(bars) and ``ticks_trigger_interval`` (ticks) when continuous, or ``availableNow`` (read what the topic holds
now, then stop).

Run it with ``tickflow stream bars [--available-now]``, ``python -m streaming_jobs.bars.job``, or on a
cluster: ``spark-submit --packages org.apache.spark:spark-sql-kafka-0-10_2.13:<version>
--py-files tickflow.zip streaming_jobs/bars/job.py [--available-now]`` (with the connector on the
classpath, ``spark_source=auto`` uses Spark's own Kafka source).
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import structlog
from prometheus_client import start_http_server
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from streaming_jobs.bars.aggregate import compute_bars
from streaming_jobs.bars.finality import delay_ms
from streaming_jobs.bars.metrics import install_progress_metrics
from streaming_jobs.bars.parse import parse_ticks, valid_ticks
from streaming_jobs.bars.tick_store import TickBatchWriter
from streaming_jobs.bars.writer import BarBatchWriter
from streaming_jobs.source import read_topic
from streaming_jobs.spark_session import build_spark
from tickflow.settings import Settings, get_settings

log = structlog.get_logger(__name__)

BARS_QUERY: Final = "bars"
TICKS_QUERY: Final = "ticks"
STOP_WAIT_S: Final = 60.0


def checkpoint(settings: Settings, query: str) -> str:
    """Absolute checkpoint directory of ``query``."""
    return str((Path(settings.checkpoint_dir) / query).resolve())


@dataclass
class BarJob:
    """The running queries of the bar application and their batch writers."""

    queries: list[StreamingQuery]
    writers: list[BarBatchWriter | TickBatchWriter] = field(default_factory=list)

    def wait(self, stop: threading.Event | None = None, poll_s: float = 0.5) -> None:
        """Block until every query has terminated or ``stop`` is set (then stop them between batches).

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


def start_bar_job(spark: SparkSession, settings: Settings, *, available_now: bool = False) -> BarJob:
    """Start the ``bars`` and ``ticks`` queries on ``spark`` (the ticks query always runs: it owns the
    dead-letter topic; ``stream_store_ticks`` only decides whether it also fills ``tick_data``)."""
    parsed: DataFrame = parse_ticks(read_topic(spark, settings, settings.topic_ticks))
    bars = compute_bars(
        valid_ticks(parsed), settings.interval_list, settings.watermark, delay_ms(settings.watermark)
    )
    bar_writer = BarBatchWriter(settings)
    tick_writer = TickBatchWriter(settings)
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
        pyspark.errors.StreamingQueryException: a query failed; the next run re-runs the failed batch.
    """
    spark = build_spark(settings, "tickflow-bars")
    if serve_metrics:
        start_http_server(settings.bars_metrics_port)
    install_progress_metrics(spark)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    job = start_bar_job(spark, settings, available_now=available_now)
    job.wait(stop)
    log.info("bar job stopped")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point for ``spark-submit streaming_jobs/bars/job.py [--available-now]``."""
    parser = argparse.ArgumentParser(description="Tickflow OHLCV/VWAP bar job")
    parser.add_argument(
        "--available-now", action="store_true", help="process what the topic holds, then stop"
    )
    args = parser.parse_args(argv)
    run(get_settings(), available_now=args.available_now)


if __name__ == "__main__":
    main()
