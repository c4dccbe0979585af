"""The indicator job: bar revisions from Kafka -> per-(symbol, interval) state -> indicators and anomalies.

Plan: the ``bars_{1m,5m,15m}`` topics (one Kafka source each, unioned) -> :func:`parse_bars`
-> ``groupBy(symbol, interval).applyInPandasWithState(UpdateIndicators)`` -> ``foreachBatch``
(:class:`IndicatorBatchWriter`). The state function keeps each key's bar history (Spark checkpoints it;
a key without state is warmed up from PostgreSQL ``ohlcv``), and emits the indicator row of every new or
revised bar and of the later bars it feeds into, with the anomaly features; invalid records come out as
rejected rows. The batch writer runs the anomaly rules on the rows and writes:

- indicators: PostgreSQL ``indicators`` (upsert), Redis ``indicators:{symbol}:{interval}`` (+ publish on
  ``indicators:{symbol}``), InfluxDB measurement ``indicators``;
- anomalies: PostgreSQL ``anomalies`` (upsert), Kafka ``topic_anomalies``, Redis ``ANOMALIES_CHANNEL``;
- rejected records: the dead-letter topic ``topic_dlq``.

When continuous, the job also runs, on threads, the bar-freshness watchdog
(:mod:`streaming_jobs.anomalies.watchdog`: a ``bar_freshness`` anomaly when ticks arrive but the bar job
shows no fresh bar) and the alert service's consumer-group lag gauge (:mod:`streaming_jobs.lag`); its query
progress exports the Spark consumer lag (``streaming_jobs.bars.metrics``).

Every write is idempotent and retried with back-off; when a write still fails, the batch fails, the query
stops with the error, and a restart re-runs the batch from the checkpoint (exactly-once results).

Run it with ``tickflow stream indicators [--available-now]`` or on a cluster with ``spark-submit ...
streaming_jobs/indicators/job.py [--available-now]`` (as the bar job).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce
from typing import Any, Final, TypeVar

import pandas as pd
import psycopg2
import psycopg2.extensions
import redis
import structlog
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from prometheus_client import start_http_server
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.streaming.state import GroupState, GroupStateTimeout
from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType, StructField, StructType

from streaming_jobs.anomalies.rules import AnomalyRules, detect
from streaming_jobs.anomalies.sinks import anomaly_records, publish_anomalies, upsert_anomalies
from streaming_jobs.anomalies.watchdog import FreshnessWatchdog
from streaming_jobs.bars.job import BarJob, stop_on_signals
from streaming_jobs.bars.metrics import install_progress_metrics
from streaming_jobs.bars.sinks.retry import SinkRetries
from streaming_jobs.checkpoints import checkpoint, exclusive, mismatch
from streaming_jobs.indicators import metrics
from streaming_jobs.indicators.formulas import HISTORY_BARS
from streaming_jobs.indicators.parse import check_bars, parse_bars
from streaming_jobs.indicators.sinks import publish_indicators, upsert_indicators, write_influx
from streaming_jobs.indicators.state import (
    ROW_COLUMNS,
    STATE_DDL,
    advance,
    history_from_state,
    history_to_state,
)
from streaming_jobs.indicators.warmup import load_history
from streaming_jobs.lag import GroupLagMonitor
from streaming_jobs.source import read_topic
from streaming_jobs.spark_session import build_spark
from tickflow import clients
from tickflow.bar_spec import EmptyIntervalPolicy
from tickflow.dead_letter import DeadLetter
from tickflow.intervals import Interval
from tickflow.kafka import Record, make_producer, produce_all
from tickflow.micros import from_micros
from tickflow.settings import Settings, reveal

log = structlog.get_logger(__name__)

QUERY_NAME: Final = "indicators"
OUTPUT_SCHEMA: Final = StructType(
    [StructField("symbol", StringType()), StructField("interval", StringType())]
    + [StructField(c, LongType() if c == "window_start" else DoubleType()) for c in ROW_COLUMNS]
    + [StructField("latency_ms", DoubleType())]
    + [StructField(c, StringType()) for c in ("reason", "detail", "raw", "topic")]
    + [StructField("partition", IntegerType()), StructField("offset", LongType())]
    + [StructField("visible_us", LongType())]
)
"""Rows of the state function: indicator rows (``reason`` null; ``window_start`` in µs) and rejected
records (``reason``, ``detail`` and the Kafka record's ``raw`` value, ``topic``, ``partition``, ``offset``
and ``visible_us`` timestamp)."""
OUTPUT_COLUMNS: Final[tuple[str, ...]] = tuple(OUTPUT_SCHEMA.fieldNames())

T = TypeVar("T")


@dataclass(frozen=True)
class UpdateIndicators:
    """The ``applyInPandasWithState`` function, keyed by (symbol, interval); pickled to the workers.

    Per call: reject invalid records, keep the latest revision (highest offset) per bar, merge into the
    key's history (from the state, else warmed up from ``ohlcv`` bars before the earliest incoming bar),
    and emit :func:`advance`'s rows plus ``latency_ms`` (bar visible minus its latest tick's receipt, for
    the incoming revisions whose record carries a receipt time).
    """

    postgres_dsn: str
    history_bars: int
    volume_window: int
    zscore_window: int
    empty_interval: EmptyIntervalPolicy

    def __call__(
        self, key: tuple[str | None, str | None], batches: Iterator[pd.DataFrame], state: GroupState
    ) -> Iterator[pd.DataFrame]:
        records = pd.concat(list(batches), ignore_index=True)
        verdict = check_bars(records)
        is_rejected = verdict["reason"].notna()
        if is_rejected.any():
            rejected = records[is_rejected].assign(**verdict[is_rejected])
            yield rejected.reindex(columns=list(OUTPUT_COLUMNS))
        valid = records[~is_rejected]
        if valid.empty:
            return
        symbol, interval = key
        latest = valid.sort_values("offset", kind="stable").drop_duplicates("window_start", keep="last")
        if state.exists:
            history = history_from_state(state.get)
        else:
            first = int(latest["window_start"].min())
            history = load_history(self.postgres_dsn, str(symbol), str(interval), first, self.history_bars)
        step = advance(
            history,
            latest,
            history_bars=self.history_bars,
            volume_window=self.volume_window,
            zscore_window=self.zscore_window,
            interval_us=Interval.parse(str(interval)).micros,
            empty_interval=self.empty_interval,
        )
        state.update(history_to_state(step.history))
        latency_ms = (latest["visible_us"] - latest["receipt_us"]) / 1000.0
        rows = step.rows.assign(
            symbol=symbol,
            interval=interval,
            latency_ms=step.rows["window_start"].map(
                dict(zip(latest["window_start"], latency_ms, strict=True))
            ),
        )
        yield rows.reindex(columns=list(OUTPUT_COLUMNS))


def indicator_rows(spark: SparkSession, settings: Settings) -> DataFrame:
    """The streaming DataFrame of ``OUTPUT_SCHEMA`` rows over the bar topics of ``settings.intervals``."""
    raw = reduce(
        DataFrame.unionByName,
        [read_topic(spark, settings, settings.bar_topic(interval)) for interval in settings.interval_list],
    )
    update = UpdateIndicators(
        postgres_dsn=clients.postgres_dsn(settings),
        # enough bars for the indicators and for the anomaly features' windows (+1 bar for the return)
        history_bars=max(
            HISTORY_BARS, settings.anomaly_volume_window + 1, settings.anomaly_zscore_window + 2
        ),
        volume_window=settings.anomaly_volume_window,
        zscore_window=settings.anomaly_zscore_window,
        empty_interval=settings.bar_empty_interval,
    )
    return (
        parse_bars(raw)
        .groupBy("symbol", "interval")
        .applyInPandasWithState(update, OUTPUT_SCHEMA, STATE_DDL, "update", GroupStateTimeout.NoTimeout)
    )


def start_indicators(
    spark: SparkSession, settings: Settings, writer: IndicatorBatchWriter, *, available_now: bool
) -> StreamingQuery:
    """Start the indicator query (checkpoint ``<checkpoint_dir>/indicators``) writing through ``writer``.

    ``available_now``: process what the topics hold now, then stop; else run with the trigger interval of
    the settings until stopped.
    """
    stream = (
        indicator_rows(spark, settings)
        .writeStream.queryName(QUERY_NAME)
        .outputMode("update")
        .foreachBatch(writer)
        .option("checkpointLocation", checkpoint(settings, QUERY_NAME))
    )
    if available_now:
        return stream.trigger(availableNow=True).start()
    return stream.trigger(processingTime=settings.trigger_interval).start()


def run_indicators(settings: Settings, *, available_now: bool, serve_metrics: bool = True) -> None:
    """Run the indicator job until it is done (``available_now``), stopped (SIGTERM/SIGINT, between
    batches) or fails; Prometheus metrics on ``indicators_metrics_port`` when ``serve_metrics``; the
    bar-freshness watchdog and the consumer-group lag monitor when continuous.

    Raises:
        streaming_jobs.checkpoints.CheckpointInUse: another process runs the job on this checkpoint.
        streaming_jobs.checkpoints.CheckpointMismatch: the checkpoint holds offsets its topics no longer have.
        pyspark.errors.StreamingQueryException: the query failed (e.g. a sink kept failing); the next run
            re-runs the failed batch from the checkpoint.
    """
    with exclusive(settings, "indicators"):
        _run(settings, available_now=available_now, serve_metrics=serve_metrics)


def _run(settings: Settings, *, available_now: bool, serve_metrics: bool) -> None:
    spark = build_spark(settings, "tickflow-indicators")
    if serve_metrics:
        start_http_server(settings.indicators_metrics_port, addr=settings.metrics_bind_host)
    install_progress_metrics(spark)
    stop = stop_on_signals()
    writer = IndicatorBatchWriter(settings, stop)
    job = BarJob([start_indicators(spark, settings, writer, available_now=available_now)], [writer])
    watchdog = None if available_now else FreshnessWatchdog(settings)
    group_lag = (
        None
        if available_now
        else GroupLagMonitor(settings, {settings.alert_consumer_group: [settings.topic_anomalies]})
    )
    for monitor in (watchdog, group_lag):
        if monitor is not None:
            monitor.start()
    log.info("indicator job started", available_now=available_now)
    try:
        job.wait(stop)
    except StreamingQueryException as exc:
        raise mismatch(exc, "indicators", settings) or exc from exc
    finally:
        for monitor in (watchdog, group_lag):
            if monitor is not None:
                monitor.close()
        spark.stop()  # before Python exits: no listener call-back then reaches an interpreter shutting down
    log.info("indicator job stopped")


class IndicatorBatchWriter:
    """The ``foreachBatch`` function: anomaly rules, then every sink, each write retried
    (``sink_retry_attempts``); runs on the driver."""

    def __init__(self, settings: Settings, stopping: threading.Event | None = None) -> None:
        """``stopping``: the job's stop event; once set, a write waiting for a store gives up
        (``SinkRetries``)."""
        self._settings = settings
        self._retry = SinkRetries(settings, stopping)
        self._rules = AnomalyRules.from_settings(settings)
        self._conn: psycopg2.extensions.connection | None = None
        self._redis = redis.Redis.from_url(settings.redis_url, **clients.redis_kwargs(settings))
        self._producer = make_producer(settings, "tickflow-indicators")
        self._influx = InfluxDBClient(
            url=settings.influx_url,
            token=reveal(settings.influx_token),
            org=settings.influx_org,
            timeout=int(settings.store_read_timeout_s * 1000),
        )
        self._write_api = self._influx.write_api(write_options=SYNCHRONOUS)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        out = batch.toPandas()
        is_rejected = out["reason"].notna()
        rejected = out[is_rejected]
        rows = out[~is_rejected].reset_index(drop=True)
        anomalies = detect(
            rows.assign(window_start=pd.to_datetime(rows["window_start"], unit="us", utc=True)),
            self._rules,
            datetime.now(UTC),
        )
        s = self._settings
        letters = [dead_letter(record, s.topic_dlq) for record in rejected.to_dict("records")]
        self._retry("indicators_dlq", produce_all, self._producer, letters)
        self._retry("indicators_postgres", self._in_postgres, upsert_indicators, rows)
        self._retry("indicators_redis", publish_indicators, self._redis, rows, s.redis_indicators_ttl_s)
        self._retry("indicators_influx", write_influx, self._write_api, s.influx_bucket, s.influx_org, rows)
        self._retry("anomalies_postgres", self._in_postgres, upsert_anomalies, anomalies)
        records = anomaly_records(s.topic_anomalies, anomalies)
        self._retry("anomalies_kafka", produce_all, self._producer, records)
        self._retry("anomalies_redis", publish_anomalies, self._redis, anomalies)
        metrics.record_batch(
            rows=len(rows), rejected=rejected, anomalies=anomalies, seconds=time.monotonic() - started
        )
        log.info(
            "indicator batch",
            batch_id=batch_id,
            rows=len(rows),
            anomalies=len(anomalies),
            rejected=len(rejected),
        )

    def __enter__(self) -> IndicatorBatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the connections."""
        if self._conn is not None:
            self._conn.close()
        self._producer.flush(10)
        self._producer.close()
        self._influx.close()
        self._redis.close()

    def _in_postgres(self, write: Callable[[psycopg2.extensions.connection, T], int], items: T) -> int:
        """``write(connection, items)``; a failed write drops the connection so the next try reconnects."""
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(clients.postgres_dsn(self._settings))
        try:
            return write(self._conn, items)
        except psycopg2.Error:
            self._conn.close()
            raise


def dead_letter(record: dict[str, Any], dlq_topic: str) -> Record:
    """The dead-letter record of a rejected bar record (a row of ``OUTPUT_SCHEMA`` with ``reason`` set),
    keyed by its symbol when it has one."""
    symbol = record["symbol"] if isinstance(record["symbol"], str) and record["symbol"] else None
    letter = DeadLetter.of(
        QUERY_NAME,
        record["reason"],
        record["detail"],
        record["raw"] if isinstance(record["raw"], str) else "",
        topic=record["topic"],
        partition=int(record["partition"]),
        offset=int(record["offset"]),
        timestamp=from_micros(record["visible_us"]),
        symbol=symbol,
    )
    return dlq_topic, symbol.encode() if symbol else None, letter.to_wire()
