"""The streaming indicator job end to end: real Spark, broker, PostgreSQL, Redis and VictoriaMetrics."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import psycopg2
import pytest
import redis
from confluent_kafka import Producer
from pyspark.sql import SparkSession

from streaming_jobs.anomalies.features import bar_features
from streaming_jobs.anomalies.rules import AnomalyRules, detect
from streaming_jobs.bars.sinks.kafka import bar_record
from streaming_jobs.indicators.formulas import compute_indicators
from streaming_jobs.indicators.job import IndicatorBatchWriter, start_indicators
from tests.reference_bars import BAR_COLUMNS
from tests.streaming_jobs.bars.support import export_series, topic_records
from tests.support.seed import insert_frame, transaction
from tickflow.anomaly import Anomaly
from tickflow.intervals import Interval
from tickflow.kafka import Record
from tickflow.keys import ANOMALIES_CHANNEL, indicators_channel, indicators_key
from tickflow.schemas import INDICATOR_FIELDS, OHLCVBar
from tickflow.settings import Settings

pytestmark = pytest.mark.spark
RTOL, ATOL = 1e-12, 1e-12  # same bars, same formulas: equal up to float rounding of the sums


def record(settings: Settings, row: pd.Series, last_receipt_time: str | None = None) -> Record:
    """The bar job's Kafka record of a bar revision."""
    bar = OHLCVBar(**{c: row[c] for c in BAR_COLUMNS})
    return bar_record(bar, settings.bar_topic(Interval.parse(bar.interval)), last_receipt_time)


def partial(row: pd.Series) -> pd.Series:
    """An earlier revision of the bar: its first trade only (a valid bar: half the volume at the open)."""
    first = row.copy()
    first[["high", "low", "close", "vwap"]] = row["open"]
    first[["volume", "quote_volume", "trade_count"]] = [row["volume"] / 2, row["open"] * row["volume"] / 2, 1]
    first["last_trade_time"] = row["first_trade_time"]
    return first


def publish(settings: Settings, records: list[Record], timestamp_ms: int = 0) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, "enable.idempotence": True})
    for topic, key, value in records:
        producer.produce(topic, key=key, value=value, timestamp=timestamp_ms)
    assert producer.flush(10) == 0


def run_job(spark: SparkSession, settings: Settings) -> None:
    with IndicatorBatchWriter(settings) as writer:
        query = start_indicators(spark, settings, writer, available_now=True)
        query.awaitTermination(180)
        assert not query.isActive and query.exception() is None


def stored_indicators(settings: Settings, interval: str) -> pd.DataFrame:
    columns = ["close", *INDICATOR_FIELDS]
    with psycopg2.connect(settings.postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT window_start, close::float8, {', '.join(INDICATOR_FIELDS)} FROM indicators"
            " WHERE symbol = 'BTC-USD' AND interval = %s ORDER BY window_start",
            (interval,),
        )
        rows = cur.fetchall()
    conn.close()
    index = pd.DatetimeIndex([r[0] for r in rows]).tz_convert("UTC")
    return pd.DataFrame([r[1:] for r in rows], columns=columns, index=index).astype("float64")


def assert_equals_batch(stored: pd.DataFrame, bars: pd.DataFrame) -> None:
    expected = compute_indicators(bars["close"]).set_index(bars["window_start"].to_numpy())
    assert list(stored.index) == list(expected.index)
    np.testing.assert_array_equal(stored["close"], bars["close"])
    for column in INDICATOR_FIELDS:
        np.testing.assert_allclose(stored[column], expected[column], rtol=RTOL, atol=ATOL, err_msg=column)


def test_coinbase_hour_indicators_anomalies_and_dead_letters(
    spark: SparkSession, fresh_env: Settings, coinbase_bars: dict[str, pd.DataFrame]
) -> None:
    settings = fresh_env
    now_ms = int(time.time() * 1000)
    records = []
    for bars in coinbase_bars.values():
        for _, row in bars.iterrows():  # every bar first as a partial revision, then final
            records += [record(settings, partial(row)), record(settings, row)]
    slow_bar = coinbase_bars["1m"].iloc[40]
    receipt = datetime.fromtimestamp((now_ms - 400) / 1000, tz=UTC).isoformat()  # visible 400 ms later
    records.append(record(settings, slow_bar, last_receipt_time=receipt))
    topic_1m, key, _ = records[0]
    topic_5m, _, value = record(settings, coinbase_bars["5m"].iloc[0])
    records += [
        (topic_1m, key, b"{not json"),
        (topic_5m, key, value.replace(b'"close":', b'"close":-1,"x":')),
    ]
    publish(settings, records, timestamp_ms=now_ms)
    client = redis.Redis.from_url(settings.redis_url)
    subscriber = client.pubsub()
    subscriber.subscribe(indicators_channel("BTC-USD"), ANOMALIES_CHANNEL)

    run_job(spark, settings)

    for interval, bars in coinbase_bars.items():
        assert_equals_batch(stored_indicators(settings, interval), bars)

    # anomalies: the rules on a batch computation of the same bars
    bars = coinbase_bars["1m"]
    rules = AnomalyRules.from_settings(settings)
    rows = pd.concat(
        [
            bars[["symbol", "interval", "window_start", "close"]],
            bar_features(bars, volume_window=rules.volume_window, zscore_window=rules.zscore_window),
            compute_indicators(bars["close"]),
        ],
        axis=1,
    ).assign(latency_ms=np.nan)
    expected = {a.key for a in detect(rows, rules, datetime.now(UTC))}
    with psycopg2.connect(settings.postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT anomaly_type, symbol, interval, event_time, value FROM anomalies WHERE interval = '1m'"
        )
        stored = {row[:4]: row[4] for row in cur.fetchall()}
        cur.execute("SELECT count(*) FROM anomalies")
        [anomalies_stored] = cur.fetchone()
    conn.close()
    assert set(stored) == expected and len(expected) >= 2
    # the slow bar (400 ms from its latest tick's receipt to visible) is no anomaly: latency is judged per
    # stage (tickflow.latency) and bar freshness by the watchdog, not per bar
    assert (
        "pipeline_latency",
        "BTC-USD",
        "1m",
        slow_bar["window_start"].to_pydatetime(),
    ) not in stored
    on_topic = [Anomaly.from_json(value) for _, value in topic_records(settings, settings.topic_anomalies)]
    assert len(on_topic) == anomalies_stored  # one batch: each anomaly once
    assert {a.key for a in on_topic if a.interval == "1m"} == expected

    # Redis: every row and anomaly published, the latest row per key kept with a TTL
    published = []
    while (message := subscriber.get_message(timeout=1.0)) is not None:
        if message["type"] == "message":
            published.append((message["channel"].decode(), json.loads(message["data"])))
    rows_published = [data for channel, data in published if channel == indicators_channel("BTC-USD")]
    assert len(rows_published) == sum(len(b) for b in coinbase_bars.values())
    assert len([c for c, _ in published if c == ANOMALIES_CHANNEL]) == anomalies_stored
    latest = json.loads(client.get(indicators_key("BTC-USD", "1m")))
    assert latest["window_start"].startswith("2023-09-05T16:59:00")
    assert latest["rsi_14"] == pytest.approx(compute_indicators(bars["close"])["rsi_14"].iloc[-1], rel=1e-12)
    assert 0 < client.ttl(indicators_key("BTC-USD", "15m")) <= settings.redis_indicators_ttl_s

    # InfluxDB (VictoriaMetrics): one rsi_14 point per defined 1m value
    [series] = [s for s in export_series(settings, "indicators_rsi_14") if s["metric"]["interval"] == "1m"]
    assert len(series["values"]) == int(compute_indicators(bars["close"])["rsi_14"].notna().sum())

    dead = [json.loads(value) for _, value in topic_records(settings, settings.topic_dlq)]
    assert sorted(d["reason"] for d in dead) == ["bad_price", "malformed"]


def test_restart_and_revision_equal_an_uninterrupted_run(
    spark: SparkSession, fresh_env: Settings, coinbase_bars: dict[str, pd.DataFrame]
) -> None:
    settings = fresh_env.model_copy(update={"intervals": ["1m"]})  # one topic: fewer Spark tasks
    bars = coinbase_bars["1m"]
    publish(settings, [record(settings, row) for _, row in bars.iloc[:30].iterrows()])
    run_job(spark, settings)
    before = stored_indicators(settings, "1m")
    assert len(before) == 30

    revised = bars.copy()
    revised.loc[29, ["close", "high"]] = [
        bars.loc[29, "close"] * 1.002,
        max(bars.loc[29, "high"], bars.loc[29, "close"] * 1.002),
    ]
    later = [record(settings, revised.loc[29])] + [
        record(settings, row) for _, row in bars.iloc[30:].iterrows()
    ]
    publish(settings, later)
    run_job(spark, settings)  # same checkpoint: the state of the first run continues

    after = stored_indicators(settings, "1m")
    assert_equals_batch(after, revised)
    pd.testing.assert_frame_equal(after.iloc[:29], before.iloc[:29])
    assert after["ema_12"].iloc[29] != before["ema_12"].iloc[29]


def test_without_state_the_job_warms_up_from_stored_bars(
    spark: SparkSession, fresh_env: Settings, coinbase_bars: dict[str, pd.DataFrame]
) -> None:
    settings = fresh_env.model_copy(update={"intervals": ["1m"]})  # one topic: fewer Spark tasks
    bars = coinbase_bars["1m"]
    with transaction(settings.postgres_dsn) as cur:
        insert_frame(cur, "ohlcv", bars.iloc[:40][BAR_COLUMNS])
    publish(settings, [record(settings, row) for _, row in bars.iloc[40:].iterrows()])
    run_job(spark, settings)
    stored = stored_indicators(settings, "1m")
    expected = compute_indicators(bars["close"]).iloc[40:]
    assert list(stored.index) == list(bars["window_start"].iloc[40:])
    for column in INDICATOR_FIELDS:
        np.testing.assert_allclose(stored[column], expected[column], rtol=RTOL, atol=ATOL, err_msg=column)
