"""The windowed latency rule of the ingest, broker and fast-path stages (:class:`tickflow.latency.
StageEpisodes`): warm-up, a sustained breach of the p99 raises one anomaly per episode, escalation, clearing;
the collector (:class:`tickflow.latency.LatencySamples`); and the stage monitor on the real stores
(PostgreSQL ``anomalies``, the anomalies topic, InfluxDB ``latency`` points in VictoriaMetrics)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
import redis
from prometheus_client import CollectorRegistry

from tests.conftest import isolated_settings
from tests.streaming_jobs.bars.support import export_series, topic_records
from tickflow.anomaly import Anomaly, AnomalyType
from tickflow.latency import (
    LatencySamples,
    Stage,
    StageEpisodes,
    WindowStats,
    stage_histogram,
    window_stats,
)
from tickflow.latency_monitor import StageMonitor
from tickflow.settings import Settings

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=10)
DEFAULTS = Settings(_env_file=None)
REDIS_DB = 13


def stats(p99_ms: float, count: int = 50) -> WindowStats:
    return WindowStats(count=count, p50_ms=p99_ms / 2, p99_ms=p99_ms, max_ms=p99_ms)


def feed(rule: StageEpisodes, p99s: list[float], stage: Stage = Stage.FAST_PATH, symbol: str = "BTC-USD"):
    """Judge one window per p99 (ms), 10 s apart from T0; the events, with their window index."""
    events = []
    for index, p99 in enumerate(p99s):
        start = T0 + index * WINDOW
        event = rule.window(stage, symbol, stats(p99), start, start + WINDOW)
        if event is not None:
            events.append((index, event))
    return events


def test_defaults_judge_the_p99_of_three_windows_of_10_s() -> None:
    rule = StageEpisodes.from_settings(DEFAULTS)
    assert (rule.breach_windows, rule.min_samples, DEFAULTS.anomaly_latency_window_s) == (3, 5, 10.0)
    assert rule.rules[Stage.FAST_PATH].threshold_ms == DEFAULTS.anomaly_fast_path_latency_ms == 100.0


def test_window_stats_are_nearest_rank() -> None:
    samples = [float(v) for v in range(1, 201)]  # 1..200 ms
    assert window_stats(samples) == WindowStats(count=200, p50_ms=100.0, p99_ms=198.0, max_ms=200.0)
    assert window_stats([7.0], count=3) == WindowStats(3, 7.0, 7.0, 7.0)


def test_samples_feed_the_histogram_and_drain_per_stage_and_symbol() -> None:
    registry = CollectorRegistry()
    samples = LatencySamples(stage_histogram(registry))
    for ms in (10.0, 20.0, 30.0):
        samples.observe(Stage.FAST_PATH, "BTC-USD", ms)
    samples.observe(Stage.BROKER, "ETH-USD", -4.0)  # clock skew: 0
    assert registry.get_sample_value("tickflow_stage_latency_seconds_count", {"stage": "fast_path"}) == 3
    assert registry.get_sample_value("tickflow_stage_latency_seconds_sum", {"stage": "fast_path"}) == (
        pytest.approx(0.06)
    )
    drained = samples.drain()
    assert drained == {
        (Stage.FAST_PATH, "BTC-USD"): WindowStats(3, 20.0, 30.0, 30.0),
        (Stage.BROKER, "ETH-USD"): WindowStats(1, 0.0, 0.0, 0.0),
    }
    assert samples.drain() == {}  # a new window


def test_warm_up_breaches_are_not_anomalies() -> None:
    """Before the first healthy window (a start: the JVM, a first connection) nothing is raised during the
    warm-up; the rule arms on the first healthy window."""
    rule = StageEpisodes.from_settings(DEFAULTS)
    assert rule.warmup_windows == 12  # 120 s of 10 s windows
    assert feed(rule, [5_000.0] * 6) == []
    assert not rule.armed(Stage.FAST_PATH, "BTC-USD")
    assert feed(rule, [20.0]) == [] and rule.armed(Stage.FAST_PATH, "BTC-USD")


def test_a_stage_slow_from_its_first_window_alarms_once_the_warm_up_is_over() -> None:
    rule = StageEpisodes.from_settings(DEFAULTS)
    events = feed(rule, [5_000.0] * 20)
    assert [(index, event.state) for index, event in events] == [(14, "open")]  # windows 13-15 breach
    assert events[0][1].severity == "critical"


def test_one_slow_window_is_no_anomaly() -> None:
    rule = StageEpisodes.from_settings(DEFAULTS)
    assert feed(rule, [20.0, 900.0, 20.0, 150.0, 150.0, 20.0, 300.0, 20.0]) == []


def test_windows_with_too_few_latencies_say_nothing() -> None:
    rule = StageEpisodes.from_settings(DEFAULTS)
    start = T0
    assert rule.window(Stage.INGEST, "BTC-USD", stats(20.0, count=4), start, start + WINDOW) is None
    assert not rule.armed(Stage.INGEST, "BTC-USD")  # not even armed by it


def test_a_sustained_breach_raises_one_anomaly_escalates_once_and_clears() -> None:
    rule = StageEpisodes.from_settings(DEFAULTS)
    armed, breach, healthy, again = (
        [30.0],
        [150.0, 160.0, 170.0, 180.0, 250.0, 400.0, 120.0],
        [40.0] * 4,
        [130.0] * 3,
    )
    p99s = armed + breach + healthy + again
    events = feed(rule, p99s)
    assert [(index, e.state, e.severity, e.value_ms) for index, e in events] == [
        (3, "open", "warning", 170.0),  # the third breaching window in a row
        (5, "escalated", "critical", 250.0),  # >= 2 x 100 ms; once, never lowered while it lasts
        (10, "cleared", "info", 400.0),  # three healthy windows in a row; the worst p99 of the episode
        (14, "open", "warning", 130.0),
    ]
    opened, escalated, cleared, again = (e for _, e in events)
    assert opened.started_at == escalated.started_at == cleared.started_at == T0 + WINDOW  # first breach
    assert cleared.at == T0 + 11 * WINDOW and again.started_at == T0 + 12 * WINDOW
    assert all(e.threshold_ms == 100.0 and e.stage is Stage.FAST_PATH for _, e in events)


def test_a_healthy_window_inside_a_breach_restarts_the_count() -> None:
    rule = StageEpisodes.from_settings(DEFAULTS)
    assert feed(rule, [30.0, 150.0, 150.0, 30.0, 150.0, 150.0]) == []
    [(_, event)] = feed(rule, [150.0])
    # the episode starts at the first of the three breaching windows in a row (index 4 of the first feed)
    assert event.state == "open" and event.started_at == T0 + 4 * WINDOW


def test_thresholds_come_from_settings_per_stage() -> None:
    settings = Settings(
        _env_file=None,
        anomaly_broker_latency_ms=40.0,
        anomaly_latency_breach_windows=1,
        anomaly_ingest_latency_ms=5,
    )
    rule = StageEpisodes.from_settings(settings)
    assert [e.state for _, e in feed(rule, [30.0, 50.0], stage=Stage.BROKER)] == ["open"]
    assert feed(rule, [30.0, 50.0], stage=Stage.FAST_PATH) == []  # 100 ms
    assert [e.severity for _, e in feed(rule, [1.0, 12.0], stage=Stage.INGEST)] == ["critical"]


def test_symbols_are_judged_apart() -> None:
    rule = StageEpisodes.from_settings(DEFAULTS)
    assert feed(rule, [30.0, 500.0, 500.0], symbol="ETH-USD") == []
    assert [e.symbol for _, e in feed(rule, [30.0, 500.0, 500.0, 500.0], symbol="SOL-USD")] == ["SOL-USD"]
    assert rule.armed(Stage.FAST_PATH, "ETH-USD")


@pytest.fixture(scope="module")
def settings(stack: Settings) -> Iterator[Settings]:
    with isolated_settings(stack, "stage", REDIS_DB, anomaly_latency_breach_windows=2) as settings:
        redis.Redis.from_url(settings.redis_url).flushdb()
        yield settings


class Clock:
    """A settable UTC clock, started in the past (VictoriaMetrics exports nothing newer than now)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)

    def __call__(self) -> datetime:
        return self.now

    def advance(self) -> datetime:
        self.now += WINDOW
        return self.now


def stored(settings: Settings, symbol: str) -> list[tuple]:
    with psycopg2.connect(settings.postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT anomaly_type, interval, severity, value, threshold, details->>'state' FROM anomalies"
            " WHERE symbol = %s",
            (symbol,),
        )
        return cur.fetchall()


def test_the_monitor_exports_windows_and_writes_one_anomaly_per_episode(settings: Settings) -> None:
    symbol = f"LAT{uuid.uuid4().hex[:6].upper()}-USD"  # VictoriaMetrics is shared: series of our own
    samples = LatencySamples(stage_histogram(CollectorRegistry()))
    clock = Clock()
    monitor = StageMonitor(settings, samples, clock)
    try:

        def window(ms: float, count: int = 20) -> list[Anomaly]:
            for _ in range(count):
                samples.observe(Stage.FAST_PATH, symbol, ms)
            clock.advance()
            return monitor.check()

        assert window(12.0) == []  # healthy: armed
        assert window(3.0, count=2) == []  # too few to judge
        assert window(180.0) == []  # first breaching window
        [raised] = window(180.0)
        assert (raised.anomaly_type, raised.severity.value, raised.details["state"]) == (
            AnomalyType.FAST_PATH_LATENCY,
            "warning",
            "open",
        )
        assert stored(settings, symbol) == [("fast_path_latency", "tick", "warning", 180.0, 100.0, "open")]
        assert window(190.0) == []  # the same episode: nothing new
        assert window(15.0) == []
        [cleared] = window(15.0)
        assert cleared.event_time == raised.event_time and cleared.details["state"] == "cleared"
        assert stored(settings, symbol) == [("fast_path_latency", "tick", "info", 190.0, 100.0, "cleared")]
        ours = [
            Anomaly.from_json(value)
            for key, value in topic_records(settings, settings.topic_anomalies)
            if key == symbol.encode()
        ]
        assert [a.details["state"] for a in ours] == ["open", "cleared"]
        series = {
            s["metric"]["__name__"]: s["values"]
            for s in export_series(settings, "latency_.*")
            if s["metric"].get("symbol") == symbol
        }
        assert series["latency_ms"] == [12.0, 3.0, 180.0, 180.0, 190.0, 15.0, 15.0]  # p99 of each window
        assert series["latency_count"] == [20, 2, 20, 20, 20, 20, 20]
    finally:
        monitor.close()
