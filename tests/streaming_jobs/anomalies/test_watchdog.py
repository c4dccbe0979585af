"""The bar-freshness watchdog on the real stack: ticks on the tick topic (broker append times) and bars in
Redis; a stalled bar job raises a ``bar_freshness`` anomaly in PostgreSQL and on the anomalies topic, fresh
bars clear it. Consumer-group lag equals the offsets read independently with a consumer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import psycopg2
import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import REGISTRY

from streaming_jobs.anomalies.watchdog import FreshnessWatchdog
from streaming_jobs.lag import GROUP_LAG, GroupLagMonitor
from tests.conftest import isolated_settings
from tests.streaming_jobs.bars.support import export_series, topic_records
from tickflow.anomaly import Anomaly, AnomalyType
from tickflow.keys import bar_key
from tickflow.settings import Settings

REDIS_DB = 11


@pytest.fixture(scope="module")
def settings(stack: Settings) -> Iterator[Settings]:
    with isolated_settings(stack, "wd", REDIS_DB, kafka_partitions=2) as settings:
        redis.Redis.from_url(settings.redis_url).flushdb()
        yield settings


def put_bar(settings: Settings, symbol: str, updated_at: datetime) -> None:
    bar = {
        "symbol": symbol,
        "interval": "1m",
        "window_start": "2026-01-05T12:00:00Z",
        "updated_at": updated_at,
    }
    client = redis.Redis.from_url(settings.redis_url)
    client.set(bar_key(symbol, "1m"), orjson.dumps(bar))
    client.close()


def produce_tick(settings: Settings, symbol: str) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    producer.produce(settings.topic_ticks, key=symbol.encode(), value=b'{"symbol": "%s"}' % symbol.encode())
    assert producer.flush(30) == 0


def check_until(watchdog: FreshnessWatchdog, settings: Settings, want: bool) -> list[Anomaly]:
    """Checks (producing a tick before each) until one returns anomalies (``want``) or 30 s pass."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        produce_tick(settings, "BTC-USD")
        anomalies = watchdog.check(wait_s=1.0)
        if bool(anomalies) == want:
            return anomalies
    raise AssertionError("the watchdog never decided")


def stored(settings: Settings) -> list[tuple]:
    with psycopg2.connect(settings.postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT symbol, severity, details->>'state' FROM anomalies WHERE anomaly_type = %s",
            (AnomalyType.BAR_FRESHNESS.value,),
        )
        return sorted(cur.fetchall())


def test_stalled_bars_raise_and_fresh_bars_clear(settings: Settings) -> None:
    watchdog = FreshnessWatchdog(settings)
    try:
        # a fresh bar arms the watchdog (warm-up over)
        deadline = time.monotonic() + 30
        while not watchdog.state.armed and time.monotonic() < deadline:
            put_bar(settings, "BTC-USD", datetime.now(UTC) + timedelta(seconds=1))
            produce_tick(settings, "BTC-USD")
            assert watchdog.check(wait_s=1.0) == []
        assert watchdog.state.armed
        # the bar job stops: the bars stay where they were while ticks keep arriving
        put_bar(settings, "BTC-USD", datetime.now(UTC) - timedelta(seconds=30))
        raised = check_until(watchdog, settings, want=True)
        assert [(a.anomaly_type, a.symbol, a.details["state"]) for a in raised] == [
            (AnomalyType.BAR_FRESHNESS, "BTC-USD", "open")
        ]
        assert raised[0].value > raised[0].threshold == 7000.0
        assert stored(settings) == [("BTC-USD", raised[0].severity.value, "open")]
        # the bar job resumes
        put_bar(settings, "BTC-USD", datetime.now(UTC) + timedelta(seconds=1))
        cleared = check_until(watchdog, settings, want=True)
        assert [a.details["state"] for a in cleared] == ["cleared"]
        assert stored(settings) == [("BTC-USD", "info", "cleared")]
        on_topic = [
            Anomaly.from_json(value) for _key, value in topic_records(settings, settings.topic_anomalies)
        ]
        assert [a.details["state"] for a in on_topic] == ["open", "cleared"]
        # VictoriaMetrics names it measurement_field; other stages (the API's, the producers') write it too
        [series] = [
            s for s in export_series(settings, "latency_ms") if s["metric"].get("stage") == "bar_freshness"
        ]
        assert max(series["values"]) >= raised[0].value  # the stalled checks were written too
    finally:
        watchdog.close()


def test_group_lag_equals_committed_offsets(settings: Settings) -> None:
    group = f"lag-{uuid.uuid4().hex[:8]}"
    topic = settings.topic_dlq
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for i in range(40):
        producer.produce(topic, key=f"k{i}".encode(), value=b"{}")
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group})
    partitions = [TopicPartition(topic, p) for p in range(settings.kafka_partitions)]
    ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
    committed = [TopicPartition(topic, p, min(3 + 5 * p, end)) for p, end in ends.items()]
    consumer.commit(offsets=committed, asynchronous=False)
    # independently of streaming_jobs.lag: what the group committed and where the partitions end
    expected = sum(ends[tp.partition] - tp.offset for tp in consumer.committed(partitions, timeout=10))
    consumer.close()
    assert 0 < expected < 40
    monitor = GroupLagMonitor(settings, {group: [topic]})
    try:
        lags = monitor.update()
    finally:
        monitor.close()
    assert lags == {group: {topic: expected}}
    exported = REGISTRY.get_sample_value(
        "tickflow_consumer_group_lag_records", {"group": group, "topic": topic}
    )
    GROUP_LAG.remove(group, topic)  # other tests read this process' registry
    assert exported == expected
