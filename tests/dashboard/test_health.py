"""The health panel reads the metrics the services really export (their own metric objects, served over
HTTP by prometheus_client) and says which ones it could not read."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pandas as pd
import pytest
import redis
from prometheus_client import CollectorRegistry, Gauge, generate_latest, start_http_server

from api.metrics import ApiMetrics
from dashboard.health import HealthMonitor, format_duration, lag_card, latency_cards, parse_metrics
from dashboard.source import TickflowApi
from infra.local.sandbox import free_port
from producers.metrics import TICKS_OUT
from streaming_jobs.bars.metrics import FRESHNESS
from tickflow.keys import ML_STATUS_KEY
from tickflow.latency import stage_histogram
from tickflow.settings import Settings


@pytest.fixture(scope="module")
def services_metrics() -> Iterator[str]:
    """The process' default registry (the producer's and bars job's metrics) on a free port."""
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1")
    yield f"http://127.0.0.1:{port}/metrics"
    server.shutdown()
    thread.join(5)


def card(cards, title: str):
    return next(c for c in cards if c.title == title)


def test_cards_show_rates_and_freshness_from_the_services_metrics(services_metrics: str) -> None:
    dead_api, dead_metrics = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}/metrics"
    settings = Settings(_env_file=None, api_url=dead_api, dashboard_cache_ttl_s=0)
    monitor = HealthMonitor(TickflowApi(settings), [services_metrics, dead_metrics])
    TICKS_OUT.labels("replay", "coinbase").inc(0)  # the series exist before the first scrape
    FRESHNESS.labels("1m")
    before = monitor.cards(None, "1m")
    assert card(before, "Ingest rate").level == "unknown"  # one scrape: no rate yet
    started = time.monotonic()
    TICKS_OUT.labels("replay", "coinbase").inc(600)
    FRESHNESS.labels("1m").observe(1.25)
    FRESHNESS.labels("1m").observe(1.75)
    FRESHNESS.labels("5m").observe(60.0)  # another interval: not in the 1m card
    time.sleep(0.6)  # two scrapes at least 0.5 s apart give a rate
    after = monitor.cards(None, "1m")
    elapsed = time.monotonic() - started

    ingest = card(after, "Ingest rate")
    rate = float(re.match(r"([\d,.]+) ticks/s", ingest.value).group(1).replace(",", ""))
    assert 600 / (elapsed + 0.1) <= rate <= 600 / 0.5 and ingest.level == "ok"
    assert ingest.detail.startswith("producer")
    freshness = card(after, "Bar freshness")
    assert (freshness.value, freshness.level) == ("1.5 s", "ok") and "last 2" in freshness.detail
    assert card(after, "API").value == "down"
    lag = card(after, "Consumer lag")
    assert lag.level == "unknown" and dead_metrics in lag.detail


def test_missing_metrics_are_unknown_never_zero() -> None:
    samples = parse_metrics([generate_latest(ApiMetrics().registry).decode(), "not prometheus {{{"])
    assert "tickflow_api_ticks_consumed_total" in samples
    assert "tickflow_bars_freshness_seconds_count" not in samples

    registry = CollectorRegistry()
    Gauge("tickflow_bars_consumer_lag_records", "Records behind.", registry=registry).set(1234)
    samples = parse_metrics([generate_latest(registry).decode()])
    assert samples["tickflow_bars_consumer_lag_records"] == 1234


def test_latency_cards_from_the_newest_bar() -> None:
    now = datetime(2024, 1, 2, 12, 0, 30, tzinfo=UTC)
    bar = pd.Series(
        {
            "window_start": pd.Timestamp("2024-01-02 11:59", tz="UTC"),
            "last_trade_time": pd.Timestamp("2024-01-02 11:59:59.2", tz="UTC"),
            "updated_at": pd.Timestamp(now - timedelta(seconds=30)),
        }
    )
    latency, update = latency_cards(bar, "1m", now)
    assert (latency.value, latency.level) == ("800 ms", "ok")
    assert (update.value, update.level) == ("30.0 s ago", "ok")
    latency, update = latency_cards(bar, "1m", now + timedelta(hours=1))
    assert update.level == "bad"
    assert [c.value for c in latency_cards(None, "5m", now)] == ["n/a", "n/a"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.85, "850 ms"), (4.2, "4.2 s"), (180, "3.0 min"), (5.1 * 3600, "5.1 h"), (731 * 86400, "731 d")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_lag_card_sums_every_reader_and_names_each() -> None:
    registry = CollectorRegistry()
    spark = Gauge(
        "tickflow_bars_consumer_lag_records", "Records behind.", ["query", "topic"], registry=registry
    )
    groups = Gauge(
        "tickflow_consumer_group_lag_records", "Records behind.", ["group", "topic"], registry=registry
    )
    spark.labels("bars", "ticks").set(1200)
    spark.labels("indicators", "bars_1m").set(0)
    groups.labels("tickflow-alerts", "anomalies").set(3)
    lag = lag_card(parse_metrics([generate_latest(registry).decode()]), "not exported")
    assert (lag.value, lag.level) == ("1,203 records", "warn")
    assert lag.detail == "bars/ticks 1,200 · indicators/bars_1m 0 · tickflow-alerts/anomalies 3"


def test_stage_card_shows_each_stage_and_the_worst_level() -> None:
    registry = CollectorRegistry()
    stages = stage_histogram(registry)
    stages.labels("ingest").observe(0.004)
    stages.labels("broker").observe(0.250)  # past 100 ms: warn
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        settings = Settings(
            _env_file=None, api_url=f"http://127.0.0.1:{free_port()}", dashboard_cache_ttl_s=0
        )
        monitor = HealthMonitor(TickflowApi(settings), [f"http://127.0.0.1:{port}/metrics"])
        stage = card(monitor.cards(None, "1m"), "Stage latency")
    finally:
        server.shutdown()
        thread.join(5)
    assert (stage.value, stage.level) == ("ingest 4 ms", "warn")
    assert stage.detail == "ingest 4 ms · broker 250 ms"


def test_prediction_card_shows_what_the_ml_service_does(app_settings: Settings) -> None:
    store = redis.Redis.from_url(app_settings.redis_url)
    monitor = HealthMonitor(TickflowApi(app_settings.model_copy(update={"dashboard_cache_ttl_s": 0})), [])
    try:
        store.delete(ML_STATUS_KEY)
        assert card(monitor.cards(None, "1m", symbol="BTC-USD"), "Prediction").value == "not running"
        series = [
            {"symbol": "BTC-USD", "interval": "1m", "state": "waiting", "missing_bars": 11},
            {"symbol": "BTC-USD", "interval": "5m", "state": "predicting", "model_version": "20260105T1200Z"},
            {
                "symbol": "BTC-USD",
                "interval": "15m",
                "state": "predicting",
                "model_version": "v15",
                "band": 0.9,
                "scored_bars": 40,
                "rmse_vs_naive": 0.9812,
                "band_coverage": 0.875,
            },
        ]
        store.set(ML_STATUS_KEY, orjson.dumps({"updated_at": "2026-01-05T12:00:00+00:00", "series": series}))
        waiting = card(monitor.cards(None, "1m", symbol="BTC-USD"), "Prediction")
        assert (waiting.value, waiting.detail, waiting.level) == (
            "waiting",
            "for 11 more final bars to train",
            "warn",
        )
        predicting = card(monitor.cards(None, "5m", symbol="BTC-USD"), "Prediction")
        assert (predicting.value, predicting.detail) == ("every final bar", "model 20260105T1200Z")
        scored = card(monitor.cards(None, "15m", symbol="BTC-USD"), "Prediction")
        assert scored.detail == "model v15 · RMSE/naive 0.981 · band 88% (nominal 90%) · 40 bars scored"
        assert card(monitor.cards(None, "1m", symbol="ETH-USD"), "Prediction").value == "no model"
    finally:
        store.delete(ML_STATUS_KEY)
        store.close()
