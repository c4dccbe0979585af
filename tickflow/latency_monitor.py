"""Stage-latency monitor of one process: every ``anomaly_latency_window_s`` it takes the window of latencies
the process measured (:class:`tickflow.latency.LatencySamples`), writes one InfluxDB point per (stage,
symbol) and judges it with the windowed rule (:class:`tickflow.latency.StageEpisodes`).

Runs beside what it watches: in the producers (``ingest``) and in each API process (``broker``,
``fast_path``). Points: ``latency,stage=<stage>,symbol=<symbol> ms=<p99>,p50_ms=..,max_ms=..,count=..``
(ms; VictoriaMetrics names the series ``latency_ms``, ``latency_p50_ms``, ...), time = the window's end
(UTC, ms). Anomalies go where every anomaly goes (PostgreSQL ``anomalies``, the anomalies topic, the Redis
anomaly channel; :mod:`tickflow.anomaly_sinks`), as the bar-freshness watchdog writes them: type
``<stage>_latency``, interval ``tick``, ``event_time`` = the episode's first breaching window start, one
record when raised, revised when it escalates and when cleared (``details.state``, severity ``info`` and the
worst p99 as value). A store that is down is logged and retried with the next event; measuring goes on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final

import psycopg2
import psycopg2.extensions
import redis
import structlog
from confluent_kafka import KafkaException, Producer
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException
from urllib3.exceptions import HTTPError

from tickflow import clients
from tickflow.anomaly import Anomaly, AnomalyType, Severity
from tickflow.anomaly_sinks import anomaly_records, publish_anomalies, upsert_anomalies
from tickflow.kafka import make_producer, produce_all
from tickflow.latency import (
    LATENCY_MEASUREMENT,
    EpisodeEvent,
    LatencySamples,
    Stage,
    StageEpisodes,
    WindowStats,
)
from tickflow.settings import Settings, reveal

log = structlog.get_logger(__name__)

ANOMALY_TYPES: Final = {
    Stage.INGEST: AnomalyType.INGEST_LATENCY,
    Stage.BROKER: AnomalyType.BROKER_LATENCY,
    Stage.FAST_PATH: AnomalyType.FAST_PATH_LATENCY,
}
"""The anomaly type of each stage judged by the windowed rule (bar freshness has the watchdog)."""


def latency_point(stage: Stage, symbol: str, stats: WindowStats, at: datetime) -> Point:
    """The InfluxDB ``latency`` point of one window (ms fields, ``count`` an integer, time ``at`` in ms)."""
    return (
        Point(LATENCY_MEASUREMENT)
        .tag("stage", stage.value)
        .tag("symbol", symbol)
        .field("ms", stats.p99_ms)
        .field("p50_ms", stats.p50_ms)
        .field("max_ms", stats.max_ms)
        .field("count", stats.count)
        .time(at, WritePrecision.MS)
    )


def episode_anomaly(event: EpisodeEvent) -> Anomaly:
    """The anomaly record of an episode change (value and threshold in ms)."""
    details: dict[str, object] = {"state": event.state, "stage": event.stage.value, "statistic": "p99"}
    if event.state == "cleared":
        details["cleared_at"] = event.at.isoformat()
    return Anomaly(
        anomaly_type=ANOMALY_TYPES[event.stage],
        severity=Severity(event.severity),
        symbol=event.symbol,
        interval="tick",
        event_time=event.started_at,
        value=round(event.value_ms, 3),
        threshold=event.threshold_ms,
        details=details,
        detected_at=event.at,
    )


class AnomalyWriter:
    """Writes anomalies to PostgreSQL, the anomalies topic and the Redis anomaly channel; connects lazily."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._conn: psycopg2.extensions.connection | None = None
        self._redis: redis.Redis | None = None
        self._producer: Producer | None = None

    def write(self, anomalies: Sequence[Anomaly]) -> None:
        """Upsert, produce and publish ``anomalies``.

        Raises:
            psycopg2.Error, redis.RedisError, KafkaException: a store failed.
        """
        if not anomalies:
            return
        s = self._settings
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(clients.postgres_dsn(s))
        try:
            upsert_anomalies(self._conn, anomalies)
        except psycopg2.Error:
            self._conn.close()
            raise
        if self._producer is None:
            self._producer = make_producer(s, "tickflow-latency-monitor")
        produce_all(self._producer, anomaly_records(s.topic_anomalies, anomalies))
        if self._redis is None:
            self._redis = redis.Redis.from_url(s.redis_url, **clients.redis_kwargs(s))
        publish_anomalies(self._redis, anomalies)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)
            self._producer.close()
            self._producer = None
        if self._redis is not None:
            self._redis.close()
        if self._conn is not None:
            self._conn.close()


class StageMonitor:
    """Drains ``samples`` every window, exports the windows and raises/clears latency anomalies.

    Args:
        settings: thresholds, window, stores.
        samples: the process's collector.
        clock: the current UTC time (injectable for tests).
    """

    def __init__(
        self,
        settings: Settings,
        samples: LatencySamples,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._samples = samples
        self._clock = clock
        self.episodes = StageEpisodes.from_settings(settings)
        self.last: dict[tuple[Stage, str], WindowStats] = {}
        """The latest window of each (stage, symbol) seen (for logs and tests)."""
        self._writer = AnomalyWriter(settings)
        self._influx = InfluxDBClient(
            url=settings.influx_url,
            token=reveal(settings.influx_token),
            org=settings.influx_org,
            timeout=int(settings.store_read_timeout_s * 1000),
        )
        self._write_api = self._influx.write_api(write_options=SYNCHRONOUS)
        self._window_started = clock()
        self._pending: list[Anomaly] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> list[Anomaly]:
        """Close the current window: export it, judge it, write the anomalies it raised or cleared (those a
        failed store did not take are retried next time); returns them."""
        started, now = self._window_started, self._clock()
        self._window_started = now
        windows = self._samples.drain()
        points = []
        for (stage, symbol), stats in sorted(windows.items()):
            self.last[(stage, symbol)] = stats
            points.append(latency_point(stage, symbol, stats, now))
            if stage not in ANOMALY_TYPES:
                continue
            event = self.episodes.window(stage, symbol, stats, started, now)
            if event is not None:
                log.warning(
                    "stage latency anomaly",
                    stage=stage.value,
                    symbol=symbol,
                    state=event.state,
                    p99_ms=round(event.value_ms, 1),
                    threshold_ms=event.threshold_ms,
                )
                self._pending.append(episode_anomaly(event))
        self._export(points)
        raised = list(self._pending)
        if raised:
            try:
                self._writer.write(raised)
            except (psycopg2.Error, redis.RedisError, KafkaException) as exc:
                log.warning("latency anomalies not written; retried next window", error=str(exc))
                return raised
            self._pending.clear()
        return raised

    def _export(self, points: list[Point]) -> None:
        """Write the window's points; a failed write is logged, never fatal (a metric, not data)."""
        if not points:
            return
        try:
            s = self._settings
            self._write_api.write(s.influx_bucket, s.influx_org, points)
        except (ApiException, HTTPError, OSError) as exc:
            log.warning("latency points not written", error=str(exc))

    def start(self) -> StageMonitor:
        """Check every ``anomaly_latency_window_s`` on a daemon thread until :meth:`close`."""
        self._window_started = self._clock()
        self._thread = threading.Thread(target=self._run, name="tickflow-stage-monitor", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._settings.anomaly_latency_window_s):
            try:
                self.check()
            except Exception:  # never let the monitor die: the process it watches goes on
                log.exception("stage monitor check failed")

    def close(self) -> None:
        """Stop the thread (after a last check) and release the connections."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
            self.check()
        self._writer.close()
        self._influx.close()
