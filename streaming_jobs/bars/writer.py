"""The ``foreachBatch`` function of the bars query: one micro-batch of bar revisions -> every sink.

Order per batch: PostgreSQL (upsert + finalisation, one transaction; the system of record) -> Redis
(latest bars and prices, pub/sub) -> InfluxDB -> Kafka. Each write goes through ``sinks.retry.SinkRetries``:
while its store is unreachable (an outage) the batch waits with back-off, up to ``sink_outage_max_s``, and
then goes on, so the query keeps running; another failure is retried ``sink_retry_attempts`` times. If a
write still fails, the exception propagates, the batch fails and the query stops; on restart Spark re-runs
the batch with the same offsets and state, and since every write is idempotent (upserts, set-if-not-older,
overwriting points, the same records again on Kafka) the result is as if the batch had run once.

Bar revisions published are the batch's bars plus the bars this batch's watermark made final (with
``is_final`` true), so every consumer sees each bar's final revision.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pyspark.sql import DataFrame

from streaming_jobs.bars import metrics
from streaming_jobs.bars.finality import WatermarkTracker, delay_ms
from streaming_jobs.bars.sinks.influx import InfluxBarSink
from streaming_jobs.bars.sinks.kafka import KafkaBarSink
from streaming_jobs.bars.sinks.postgres import PostgresBarSink, finalisation_lower_bound
from streaming_jobs.bars.sinks.redis_store import LatestPrice, RedisBarSink, iso_utc
from streaming_jobs.bars.sinks.retry import SinkRetries
from tickflow.clients import postgres_dsn, redis_kwargs
from tickflow.schemas import BAR_FIELDS, OHLCVBar
from tickflow.settings import Settings, reveal

log = structlog.get_logger(__name__)


def latest_prices(bars: Sequence[OHLCVBar]) -> list[LatestPrice]:
    """Per symbol, the close of the bar with the latest trade (the last traded price) and its time."""
    best: dict[str, OHLCVBar] = {}
    for bar in bars:
        current = best.get(bar.symbol)
        if current is None or bar.last_trade_time > current.last_trade_time:
            best[bar.symbol] = bar
    return [LatestPrice(b.symbol, b.close, b.last_trade_time) for b in best.values()]


class BarBatchWriter:
    """Writes the bar revisions of each micro-batch to PostgreSQL, Redis, InfluxDB and Kafka."""

    def __init__(self, settings: Settings, stopping: threading.Event | None = None) -> None:
        """``stopping``: the job's stop event; once set, a write waiting for a store gives up
        (``SinkRetries``)."""
        self.settings = settings
        self._retry = SinkRetries(settings, stopping)
        self.tracker = WatermarkTracker(delay_ms(settings.watermark))
        self._longest = timedelta(minutes=max(settings.interval_list).minutes)
        self.postgres = PostgresBarSink(postgres_dsn(settings))
        self.redis = RedisBarSink(
            settings.redis_url, settings.redis_bar_ttl_s, settings.redis_price_ttl_s, redis_kwargs(settings)
        )
        self.influx = InfluxBarSink(
            settings.influx_url,
            reveal(settings.influx_token),
            settings.influx_org,
            settings.influx_bucket,
            timeout_ms=int(settings.store_read_timeout_s * 1000),
        )
        self.kafka = KafkaBarSink(settings)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        rows: list[dict[str, Any]] = batch.toArrow().to_pylist()
        self.write(rows, batch_id)

    def write(self, rows: Sequence[dict[str, Any]], batch_id: int) -> None:
        """Write the bar rows of one batch (columns of ``aggregate.BAR_OUTPUT_COLUMNS``, UTC datetimes).
        A batch without bars changes nothing (the watermark only moves with new ticks)."""
        if not rows:
            return
        previous = self.tracker.watermark
        self.tracker.observe(max(row["last_trade_time"] for row in rows))
        watermark = self.tracker.watermark
        bars = [
            OHLCVBar(
                **{name: row[name] for name in BAR_FIELDS if name != "is_final"},
                is_final=self.tracker.is_final(row["window_end"]),
            )
            for row in rows
        ]
        since = finalisation_lower_bound(previous, self._longest)
        finalised = self._retry("postgres", self.postgres.write, bars, watermark, since)
        revisions = [*bars, *finalised]
        receipts = [iso_utc(row["last_receipt_time"]) for row in rows] + [None] * len(finalised)
        self._retry("redis", self.redis.write, revisions, latest_prices(bars))
        visible = datetime.now(UTC)
        self._retry("influx", self.influx.write, revisions)
        self._retry("kafka", self.kafka.write, revisions, receipts)
        for bar in revisions:
            metrics.BARS_WRITTEN.labels(bar.interval).inc()
            if bar.window_end <= visible:
                metrics.FRESHNESS.labels(bar.interval).observe((visible - bar.window_end).total_seconds())
        log.info(
            "bars written",
            batch_id=batch_id,
            bars=len(bars),
            finalised=len(finalised),
            watermark=watermark.isoformat() if watermark else None,
        )

    def close(self) -> None:
        """Release the sinks' connections."""
        self.postgres.close()
        self.redis.close()
        self.influx.close()
        self.kafka.close()
