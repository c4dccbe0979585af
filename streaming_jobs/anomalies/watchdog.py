"""Bar-freshness watchdog: raises a ``bar_freshness`` anomaly when ticks keep arriving but no bar revision
becomes visible, and clears it when bars are fresh again.

The bar job cannot report its own stall (a stopped or hung job writes nothing), so the watchdog runs
outside it, as a thread of the indicator job (which has every anomaly sink at hand). Every
``anomaly_watchdog_interval_s`` it compares:

- the newest tick: the highest Kafka append time (``LogAppendTime``) on ``topic_ticks``, read by a consumer
  without a group that follows the end of the topic;
- the newest bar revision: the highest ``updated_at`` (the micro-batch time) of the ``bars:*:*`` bars in
  Redis.

``lag = newest tick - bar progress`` (s), where the bar progress is the newest revision's ``updated_at`` or,
when later, the time the watchdog first saw that revision (``updated_at`` is the micro-batch's start, so a
slow but progressing batch is not counted twice); exported as the gauge
``tickflow_bar_freshness_lag_seconds``, the histogram
``tickflow_stage_latency_seconds{stage="bar_freshness"}`` (one observation per check) and the InfluxDB
point ``latency,stage=bar_freshness ms=<lag>``. A healthy bar job keeps it below one trigger interval plus
its batch time; the threshold is ``trigger_interval + anomaly_bar_freshness_margin_s``
(:func:`tickflow.latency.latency_rules`). Without ticks (a quiet market, a stopped producer) the lag stays
small: nothing to aggregate is no stall.

Warm-up: the watchdog is armed only after it has seen the lag within the threshold once, so the JVM's first
micro-batch (tens of seconds) after a start of the bar job is not an anomaly.

An outage opens one anomaly per symbol with bars, keyed by the newest bar's time (``event_time``): it is
written when raised, revised when its severity rises, and revised with ``details.state = "cleared"``
(severity ``info``, ``value`` = the largest lag seen, ms) when the lag is within the threshold again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import orjson
import psycopg2
import psycopg2.extensions
import redis
import structlog
from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException
from prometheus_client import Gauge
from urllib3.exceptions import HTTPError

from streaming_jobs.anomalies.sinks import anomaly_records, publish_anomalies, upsert_anomalies
from tickflow import clients
from tickflow.anomaly import Anomaly, AnomalyType, Severity
from tickflow.kafka import make_producer, produce_all
from tickflow.keys import BAR_KEY_PATTERN
from tickflow.latency import (
    LATENCY_MEASUREMENT,
    LatencyRule,
    Stage,
    default_stage_histogram,
    latency_rules,
)
from tickflow.settings import Settings, reveal

log = structlog.get_logger(__name__)

LAG: Final = Gauge(
    "tickflow_bar_freshness_lag_seconds",
    "Bar-freshness watchdog: newest tick's Kafka append time minus the newest visible bar revision (s).",
)
ARMED: Final = Gauge("tickflow_bar_freshness_watchdog_armed", "1 once the watchdog has seen a fresh bar.")
BAR_KEYS: Final = BAR_KEY_PATTERN


@dataclass
class FreshnessState:
    """The watchdog's decisions, free of I/O: feed it observations with :meth:`observe`."""

    rule: LatencyRule
    interval: str
    armed: bool = False
    outage_start: datetime | None = None
    outage_severity: Severity | None = None
    worst_ms: float = 0.0
    symbols: list[str] = field(default_factory=list)
    lag_ms: float | None = None
    newest_bar: datetime | None = None
    seen_at: datetime | None = None

    def observe(
        self, newest_tick: datetime | None, newest_bars: dict[str, datetime], now: datetime
    ) -> list[Anomaly]:
        """The anomalies to write for one observation (none, raised, escalated or cleared).

        Args:
            newest_tick: the newest tick's append time (UTC); None when none was seen yet.
            newest_bars: ``updated_at`` of the newest bar revision per symbol (UTC).
            now: the observation time (UTC), stamped on the records.
        """
        if newest_tick is None or not newest_bars:
            self.lag_ms = None
            return []
        newest_bar = max(newest_bars.values())
        if self.newest_bar is not None and newest_bar > self.newest_bar:
            self.seen_at = now  # a new revision became visible since the last observation
        self.newest_bar = newest_bar
        progress = newest_bar if self.seen_at is None else max(newest_bar, self.seen_at)
        lag_ms = self.lag_ms = max((newest_tick - progress).total_seconds() * 1000, 0.0)
        LAG.set(lag_ms / 1000)
        severity = self.rule.severity(lag_ms)
        if severity is None:
            self.armed = True
            ARMED.set(1)
            return self._clear(now) if self.outage_start is not None else []
        if not self.armed:
            return []
        if self.outage_start is None:
            self.outage_start, self.symbols, self.worst_ms = newest_bar, sorted(newest_bars), 0.0
        self.worst_ms = max(self.worst_ms, lag_ms)
        if severity == self.outage_severity:
            return []
        if self.outage_severity == "critical":
            return []  # never lowered while the outage lasts
        self.outage_severity = severity
        log.warning("bar freshness anomaly", lag_ms=round(lag_ms), severity=severity)
        return self._records(Severity(severity), lag_ms, now, {"state": "open"})

    def _clear(self, now: datetime) -> list[Anomaly]:
        records = self._records(Severity.INFO, self.worst_ms, now, {"state": "cleared", "cleared_at": now})
        log.info("bar freshness anomaly cleared", worst_ms=round(self.worst_ms))
        self.outage_start, self.outage_severity, self.worst_ms = None, None, 0.0
        return records

    def _records(self, severity: Severity, value_ms: float, now: datetime, details: dict) -> list[Anomaly]:
        assert self.outage_start is not None
        return [
            Anomaly(
                anomaly_type=AnomalyType.BAR_FRESHNESS,
                severity=severity,
                symbol=symbol,
                interval=self.interval,
                event_time=self.outage_start,
                value=round(value_ms, 3),
                threshold=self.rule.threshold_ms,
                details={k: v.isoformat() if isinstance(v, datetime) else v for k, v in details.items()},
                detected_at=now,
            )
            for symbol in self.symbols
        ]


class TickClock:
    """Follows the end of the tick topic and remembers the highest Kafka append time seen (no group)."""

    def __init__(self, settings: Settings) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap_servers,
                "group.id": "tickflow-freshness-watchdog",  # librdkafka needs one; nothing is committed
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 100,
            }
        )
        metadata = self._consumer.list_topics(settings.topic_ticks, timeout=10)
        partitions = metadata.topics[settings.topic_ticks].partitions
        self._consumer.assign([TopicPartition(settings.topic_ticks, p, OFFSET_END) for p in partitions])
        self.newest: datetime | None = None

    def poll(self, timeout_s: float) -> datetime | None:
        """Read what arrived (waiting at most ``timeout_s``); the newest append time so far (UTC)."""
        wait = timeout_s
        while True:
            messages = self._consumer.consume(num_messages=10_000, timeout=wait)
            stamps = [m.timestamp()[1] for m in messages if m.error() is None and m.timestamp()[1] > 0]
            if stamps:
                newest = datetime.fromtimestamp(max(stamps) / 1000, UTC)
                self.newest = newest if self.newest is None else max(self.newest, newest)
            if len(messages) < 10_000:
                return self.newest
            wait = 0.0

    def close(self) -> None:
        self._consumer.close()


def newest_bars(client: redis.Redis) -> dict[str, datetime]:
    """``updated_at`` of the newest bar revision in Redis per symbol (UTC); bars without it are skipped."""
    keys = list(client.scan_iter(match=BAR_KEYS, count=1000))
    newest: dict[str, datetime] = {}
    for raw in client.mget(keys) if keys else []:
        if raw is None:
            continue
        try:
            bar = orjson.loads(raw)
            updated = datetime.fromisoformat(bar["updated_at"].replace("Z", "+00:00"))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
            continue
        symbol = str(bar.get("symbol"))
        newest[symbol] = max(newest.get(symbol, updated), updated)
    return newest


class FreshnessWatchdog:
    """Runs :class:`FreshnessState` on live observations and writes its anomalies to every anomaly sink
    (PostgreSQL ``anomalies``, the anomalies topic, the Redis anomaly channel).

    Args:
        settings: thresholds, interval, Kafka/Redis/PostgreSQL addresses.
        clock: the current UTC time (injectable for tests).
    """

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._settings = settings
        self._clock = clock
        finest = min(settings.interval_list, key=lambda interval: interval.minutes)
        self.state = FreshnessState(latency_rules(settings)[Stage.BAR_FRESHNESS], finest.name)
        self._ticks = TickClock(settings)
        self._redis = redis.Redis.from_url(settings.redis_url, **clients.redis_kwargs(settings))
        self._producer = make_producer(settings, "tickflow-freshness-watchdog")
        self._conn: psycopg2.extensions.connection | None = None
        self._influx = InfluxDBClient(
            url=settings.influx_url,
            token=reveal(settings.influx_token),
            org=settings.influx_org,
            timeout=int(settings.store_read_timeout_s * 1000),
        )
        self._write_api = self._influx.write_api(write_options=SYNCHRONOUS)
        self._histogram = default_stage_histogram().labels(Stage.BAR_FRESHNESS.value)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def check(self, wait_s: float = 0.0) -> list[Anomaly]:
        """One observation (reading ticks for at most ``wait_s``); writes and returns its anomalies.

        Raises:
            redis.RedisError, psycopg2.Error, confluent_kafka.KafkaException: a store failed.
        """
        newest_tick = self._ticks.poll(wait_s)
        now = self._clock()
        anomalies = self.state.observe(newest_tick, newest_bars(self._redis), now)
        if anomalies:
            self._write(anomalies)
        if self.state.lag_ms is not None:
            self._histogram.observe(self.state.lag_ms / 1000)
            self._write_latency(self.state.lag_ms, now)
        return anomalies

    def _write_latency(self, lag_ms: float, now: datetime) -> None:
        """The ``latency`` point of this check; a failed write is logged, never fatal (a metric, not data)."""
        point = Point(LATENCY_MEASUREMENT).tag("stage", Stage.BAR_FRESHNESS.value).field("ms", lag_ms)
        try:
            s = self._settings
            self._write_api.write(s.influx_bucket, s.influx_org, point.time(now, WritePrecision.MS))
        except (ApiException, HTTPError, OSError) as exc:
            log.warning("latency point not written", error=str(exc))

    def _write(self, anomalies: Sequence[Anomaly]) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(clients.postgres_dsn(self._settings))
        try:
            upsert_anomalies(self._conn, anomalies)
        except psycopg2.Error:
            self._conn.close()
            raise
        produce_all(self._producer, anomaly_records(self._settings.topic_anomalies, anomalies))
        publish_anomalies(self._redis, anomalies)

    def start(self) -> None:
        """Check every ``anomaly_watchdog_interval_s`` on a daemon thread until :meth:`close`."""
        self._thread = threading.Thread(target=self._run, name="tickflow-freshness-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check(self._settings.anomaly_watchdog_interval_s)
            except (redis.RedisError, psycopg2.Error, KafkaException) as exc:
                log.warning("freshness watchdog retry", error=str(exc))
                self._stop.wait(self._settings.anomaly_watchdog_interval_s)

    def close(self) -> None:
        """Stop the thread and release the connections."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._ticks.close()
        self._producer.flush(10)
        self._producer.close()
        self._redis.close()
        self._influx.close()
        if self._conn is not None:
            self._conn.close()
