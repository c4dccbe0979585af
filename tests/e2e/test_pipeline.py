"""End to end on real data: the Coinbase hour replayed through the producer -> Kafka -> the Spark bar and
indicator jobs -> PostgreSQL/Redis -> the REST API and a WebSocket client, all real processes and services."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from websockets.sync.client import connect

from infra.local.servers import ApiServer
from producers.replay import replay_file
from streaming_jobs.bars.job import start_bar_job
from streaming_jobs.indicators.formulas import compute_indicators
from streaming_jobs.indicators.job import IndicatorBatchWriter, start_indicators
from tests.conftest import COINBASE_HOUR_CSV
from tickflow.settings import Settings

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def pipeline(stack: Settings, spark: SparkSession, shared_data: Path, tmp_path_factory) -> Iterator[Settings]:
    """Replay the hour, run the bar job then the indicator job to completion, and serve the API."""
    from tests.conftest import isolated_settings

    with isolated_settings(stack, "e2e", redis_db=5) as base:
        settings = base.model_copy(update={"checkpoint_dir": tmp_path_factory.mktemp("e2e-checkpoints")})
        stats = replay_file(settings, shared_data / COINBASE_HOUR_CSV)
        assert stats.delivered == 5882
        start_bar_job(spark, settings, available_now=True).wait()
        writer = IndicatorBatchWriter(settings)
        try:
            start_indicators(spark, settings, writer, available_now=True).awaitTermination()
        finally:
            writer.close()
        server = ApiServer(settings, tmp_path_factory.mktemp("e2e") / "api.log").start()
        try:
            yield server.settings.model_copy(update={"api_url": server.url})
        finally:
            server.stop()


def get(settings: Settings, path: str, **params: object) -> dict:
    response = httpx.get(f"{settings.api_url}/api/v1{path}", params=params, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def all_items(settings: Settings, path: str, **params: object) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        page = get(settings, path, limit=1000, **params, **({"cursor": cursor} if cursor else {}))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


@pytest.mark.parametrize("interval", ["1m", "5m", "15m"])
def test_api_serves_the_bars_of_the_replayed_hour(
    pipeline: Settings, coinbase_bars: dict[str, pd.DataFrame], interval: str
) -> None:
    served = pd.DataFrame(all_items(pipeline, "/bars/BTC-USD", interval=interval))
    reference = coinbase_bars[interval]
    assert len(served) == len(reference)
    served["window_start"] = pd.to_datetime(served["window_start"], utc=True)
    merged = reference.merge(served, on="window_start", suffixes=("_ref", ""))
    assert len(merged) == len(reference)
    for column in ("open", "high", "low", "close", "trade_count"):
        assert (merged[column] == merged[f"{column}_ref"]).all(), column
    for column in ("volume", "vwap"):
        assert ((merged[column] / merged[f"{column}_ref"] - 1).abs() < 1e-9).all(), column


def test_api_serves_every_replayed_tick_and_the_latest_price(
    pipeline: Settings, coinbase_bars: dict[str, pd.DataFrame]
) -> None:
    ticks = all_items(pipeline, "/ticks/BTC-USD", start="2023-09-05T16:00:00Z", end="2023-09-05T17:00:00Z")
    assert len(ticks) == 5882
    assert len({t["trade_id"] for t in ticks}) == 5882
    assert get(pipeline, "/latest/BTC-USD")["price"] == coinbase_bars["1m"]["close"].iloc[-1]


def test_api_serves_indicators_equal_to_a_batch_run(
    pipeline: Settings, coinbase_bars: dict[str, pd.DataFrame]
) -> None:
    served = pd.DataFrame(all_items(pipeline, "/indicators/BTC-USD", interval="1m"))
    expected = compute_indicators(coinbase_bars["1m"]["close"].reset_index(drop=True))
    assert len(served) == len(expected)
    ema = served["ema_12"].astype(float).to_numpy()
    reference = expected["ema_12"].to_numpy()
    mask = ~pd.isna(reference)
    assert mask.sum() > 40
    assert abs(ema[mask] - reference[mask]).max() < 1e-6


def test_websocket_client_gets_a_bar_published_by_the_pipeline(pipeline: Settings) -> None:
    import redis

    from tickflow.keys import bar_key, bars_channel

    with connect(f"ws://127.0.0.1:{pipeline.api_port}/ws", open_timeout=10) as ws:
        json.loads(ws.recv(timeout=5))  # welcome
        ws.send(json.dumps({"type": "subscribe", "symbols": ["BTC-USD"], "channels": ["bars:1m"]}))
        assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
        stored = redis.Redis.from_url(pipeline.redis_url).get(bar_key("BTC-USD", "1m"))
        assert stored is not None  # written by the bar job
        redis.Redis.from_url(pipeline.redis_url).publish(bars_channel("BTC-USD"), stored)
        message = json.loads(ws.recv(timeout=5))
        assert message["type"] == "bar" and message["data"] == json.loads(stored)


def test_a_healthy_pipeline_raises_no_latency_anomaly(pipeline: Settings) -> None:
    """The replayed hour went through the bar and indicator jobs with its receipt times of 2023: the old
    per-bar receipt -> visible rule flagged every bar; per-stage latency does not judge bars."""
    anomalies = all_items(pipeline, "/anomalies", symbol="BTC-USD", since="2023-09-05T00:00:00Z")
    assert anomalies  # the hour has price/volume/RSI anomalies
    latency_types = {"pipeline_latency", "bar_freshness"} | {
        f"{s}_latency" for s in ("ingest", "broker", "fast_path")
    }
    assert not {a["anomaly_type"] for a in anomalies} & latency_types
