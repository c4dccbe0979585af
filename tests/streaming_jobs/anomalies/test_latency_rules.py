"""Per-stage latency rules: thresholds from settings, the bar-freshness threshold derived from the trigger
interval, and the watchdog's decisions (warm-up excluded, raised, escalated, cleared)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streaming_jobs.anomalies.watchdog import FreshnessState
from streaming_jobs.lag import spark_lag
from tickflow.anomaly import AnomalyType, Severity
from tickflow.latency import Stage, interval_seconds, latency_rules
from tickflow.settings import Settings

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
RULES = latency_rules(Settings(_env_file=None))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1 second", 1.0), ("500 milliseconds", 0.5), ("2 minutes", 120.0), ("10 s", 10.0), ("250ms", 0.25)],
)
def test_trigger_interval_seconds(text: str, seconds: float) -> None:
    assert interval_seconds(text) == seconds


def test_unknown_trigger_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="not a trigger interval"):
        interval_seconds("soon")


def test_default_thresholds() -> None:
    assert set(RULES) == set(Stage)
    assert RULES[Stage.INGEST].threshold_ms == RULES[Stage.FAST_PATH].threshold_ms == 100.0  # the design's
    assert RULES[Stage.BROKER].threshold_ms == 250.0
    assert RULES[Stage.BAR_FRESHNESS].threshold_ms == 7000.0  # 1 s trigger + 6 s margin


def test_freshness_threshold_follows_the_trigger_interval() -> None:
    settings = Settings(_env_file=None, trigger_interval="10 seconds", anomaly_bar_freshness_margin_s=2.0)
    assert latency_rules(settings)[Stage.BAR_FRESHNESS].threshold_ms == 12_000.0


@pytest.mark.parametrize(
    ("latency_ms", "severity"),
    [
        (50.0, None),
        (100.0, None),
        (100.5, "warning"),
        (199.0, "warning"),
        (200.0, "critical"),
        (float("nan"), None),
    ],
)
def test_ingest_rule(latency_ms: float, severity: str | None) -> None:
    assert RULES[Stage.INGEST].severity(latency_ms) == severity


def test_ingest_threshold_comes_from_settings() -> None:
    rules = latency_rules(Settings(_env_file=None, anomaly_ingest_latency_ms=20.0))
    assert rules[Stage.INGEST].severity(50.0) == "critical" and RULES[Stage.INGEST].severity(50.0) is None


def state() -> FreshnessState:
    return FreshnessState(RULES[Stage.BAR_FRESHNESS], "1m")


def bars_at(at: datetime) -> dict[str, datetime]:
    return {"BTC-USD": at, "ETH-USD": at - timedelta(seconds=1)}


def test_warm_up_is_not_an_anomaly() -> None:
    watchdog = state()
    # the JVM's first batch: ticks 24 s ahead of any bar, before a fresh bar was ever seen
    assert watchdog.observe(T0 + timedelta(seconds=24), bars_at(T0), T0) == []
    assert not watchdog.armed
    assert watchdog.observe(T0 + timedelta(seconds=25), bars_at(T0 + timedelta(seconds=24)), T0) == []
    assert watchdog.armed


def test_stall_raises_escalates_and_clears() -> None:
    watchdog = state()
    assert watchdog.observe(T0 + timedelta(seconds=2), bars_at(T0), T0) == []  # healthy: armed
    raised = watchdog.observe(T0 + timedelta(seconds=8), bars_at(T0), T0)
    assert [(a.symbol, a.severity, a.value) for a in raised] == [
        ("BTC-USD", Severity.WARNING, 8000.0),
        ("ETH-USD", Severity.WARNING, 8000.0),
    ]
    assert all(a.anomaly_type is AnomalyType.BAR_FRESHNESS and a.event_time == T0 for a in raised)
    assert watchdog.observe(T0 + timedelta(seconds=9), bars_at(T0), T0) == []  # same severity: no revision
    escalated = watchdog.observe(T0 + timedelta(seconds=15), bars_at(T0), T0)
    assert {a.severity for a in escalated} == {Severity.CRITICAL}
    cleared = watchdog.observe(T0 + timedelta(seconds=31), bars_at(T0 + timedelta(seconds=30)), T0)
    assert {(a.severity, a.details["state"], a.value, a.event_time) for a in cleared} == {
        (Severity.INFO, "cleared", 15000.0, T0)
    }
    assert watchdog.observe(T0 + timedelta(seconds=32), bars_at(T0 + timedelta(seconds=31)), T0) == []


def test_a_slow_but_progressing_bar_job_is_no_stall() -> None:
    """Each new revision counts from when it was first seen: a batch that starts 6 s behind the ticks and
    finishes is progress, not 6 s plus the next batch's time."""
    watchdog = state()
    assert watchdog.observe(T0 + timedelta(seconds=1), bars_at(T0), T0) == []  # armed
    for step in range(1, 6):
        now = T0 + timedelta(seconds=8 * step)
        assert watchdog.observe(now, bars_at(now - timedelta(seconds=6)), now) == []
        assert watchdog.lag_ms == 0.0
    stalled = T0 + timedelta(seconds=40 + 8)  # no new revision for 8 s past the last one seen
    assert [
        a.details["state"] for a in watchdog.observe(stalled, bars_at(T0 + timedelta(seconds=34)), stalled)
    ] == [
        "open",
        "open",
    ]
    assert watchdog.lag_ms == 8000.0


def test_no_ticks_is_no_stall() -> None:
    watchdog = state()
    assert watchdog.observe(T0, bars_at(T0), T0) == []
    assert watchdog.observe(None, bars_at(T0), T0) == []
    assert watchdog.observe(T0 - timedelta(minutes=5), bars_at(T0), T0 + timedelta(minutes=5)) == []


def test_spark_lag_per_topic() -> None:
    end = '{"ticks": {"0": 100, "1": 40}, "bars": {"0": 7}}'
    latest = '{"ticks": {"0": 130, "1": 45}, "bars": {"0": 7}}'
    assert spark_lag(end, latest) == {"ticks": 35, "bars": 0}
    assert spark_lag(None, latest) == {} and spark_lag(end, "not json") == {}
