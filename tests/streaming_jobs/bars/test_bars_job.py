"""The bar job in-process on a shared SparkSession: real broker, PostgreSQL, Redis and VictoriaMetrics."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import orjson
import pandas as pd
import psycopg2
import pytest
import redis
from pyspark.errors import StreamingQueryException
from pyspark.sql import SparkSession

from producers.replay import replay_file
from streaming_jobs.bars import metrics
from streaming_jobs.bars.job import start_bar_job
from streaming_jobs.bars.sinks.outage import OUTAGES
from tests.conftest import COINBASE_HOUR_CSV
from tests.reference_bars import load_trades_csv
from tests.streaming_jobs.bars.support import (
    assert_equal_to_reference,
    bar,
    export_series,
    fetch_bars,
    produce,
    produce_ticks,
    tick,
    topic_records,
)
from tickflow.keys import bar_key, bars_channel, latest_price_key
from tickflow.settings import Settings

pytestmark = pytest.mark.spark

MALFORMED = [  # (value, reason of the dead letter)
    (b"{not json", "malformed"),
    (b'{"v": 2, "symbol": "BTC-USD"}', "malformed"),
    (b'{"v": 1, "exchange": "coinbase", "symbol": "BTC-USD"}', "missing_field"),
    (
        b'{"v": 1, "exchange": "coinbase", "symbol": "BTC-USD", "raw_symbol": "BTC-USD", "price": -5.0,'
        b' "size": 1.0, "side": "buy", "trade_id": "x1", "event_time": 1693929600000000,'
        b' "receipt_time": 1693929600000000, "source": "replay"}',
        "bad_price",
    ),
    (b"", "malformed"),
]


def run_available_now(spark: SparkSession, settings: Settings) -> None:
    """Run the bar job until it has processed what the tick topic holds."""
    start_bar_job(spark, settings, available_now=True).wait()


def late_rows_dropped() -> float:
    return metrics.LATE_ROWS_DROPPED._value.get()


def test_coinbase_hour_bars_equal_reference_in_every_sink(
    spark: SparkSession, fresh_env: Settings, shared_data: Path, coinbase_bars: dict[str, pd.DataFrame]
) -> None:
    settings = fresh_env
    csv = shared_data / COINBASE_HOUR_CSV
    assert replay_file(settings, csv, "coinbase_csv").produced == 5882
    produce(settings, [(b"BAD", value) for value, _ in MALFORMED])
    client = redis.Redis.from_url(settings.redis_url)
    subscriber = client.pubsub()
    subscriber.subscribe(bars_channel("BTC-USD"))

    run_available_now(spark, settings)

    trades = load_trades_csv(csv)
    stored = fetch_bars(settings)
    for interval, reference in coinbase_bars.items():
        assert_equal_to_reference(stored[stored["interval"] == interval], reference)

    # is_final: exactly the bars whose end is at or before Spark's watermark (max event time in ms - 2 min)
    watermark = trades["timestamp"].max().floor("ms") - pd.Timedelta(minutes=2)
    assert stored["is_final"].tolist() == (stored["window_end"] <= watermark).tolist()
    assert 0 < (~stored["is_final"]).sum() < len(stored)

    # raw ticks in tick_data, prices exact
    with psycopg2.connect(settings.postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT trade_id::int, price::float8, size::float8 FROM tick_data ORDER BY 1")
        ticks = cur.fetchall()
    conn.close()
    assert [(p, s) for _, p, s in ticks] == list(zip(trades["price"], trades["amount"], strict=True))

    # malformed records: counted and in the dead-letter topic with their reason
    letters = [orjson.loads(value) for _, value in topic_records(settings, settings.topic_dlq)]
    assert sorted(letter["reason"] for letter in letters) == sorted(reason for _, reason in MALFORMED)
    assert {letter["stage"] for letter in letters} == {"bars"}
    assert {letter["raw"] for letter in letters} == {value.decode() for value, _ in MALFORMED}

    # Redis: the latest bar of each interval and the last price, with TTLs; every revision published
    for interval in ("1m", "5m", "15m"):
        key = bar_key("BTC-USD", interval)
        latest = orjson.loads(client.get(key))
        expected = stored[stored["interval"] == interval].iloc[-1]
        assert pd.Timestamp(latest["window_start"]) == expected["window_start"]
        assert (latest["close"], latest["trade_count"]) == (expected["close"], expected["trade_count"])
        assert 0 < client.ttl(key) <= settings.redis_bar_ttl_s
    last_trade = trades.sort_values("timestamp", kind="stable").iloc[-1]
    price = orjson.loads(client.get(latest_price_key("BTC-USD")))
    assert (price["symbol"], price["price"]) == ("BTC-USD", last_trade["price"])
    assert pd.Timestamp(price["time"]) == last_trade["timestamp"]
    assert 0 < client.ttl(latest_price_key("BTC-USD")) <= settings.redis_price_ttl_s
    published = []
    while (message := subscriber.get_message(timeout=1.0)) is not None:
        if message["type"] == "message":
            published.append(orjson.loads(message["data"]))
    assert len(published) == len(stored)

    # VictoriaMetrics: ohlcv_<field> series per symbol/interval; the 1m closes equal the reference
    series = export_series(settings, "ohlcv_.*")
    names = {s["metric"]["__name__"] for s in series if s["metric"].get("symbol") == "BTC-USD"}
    assert {f"ohlcv_{f}" for f in ("open", "high", "low", "close", "volume", "vwap", "trade_count")} <= names
    closes = next(
        s for s in series if s["metric"] == {"__name__": "ohlcv_close", "symbol": "BTC-USD", "interval": "1m"}
    )
    reference_1m = coinbase_bars["1m"]
    expected_closes = dict(
        zip(reference_1m["window_start"].astype("int64") // 1000, reference_1m["close"], strict=True)
    )
    first, last = min(expected_closes), max(expected_closes)  # other tests write live-time BTC-USD bars too
    points = {t: v for t, v in zip(closes["timestamps"], closes["values"], strict=True) if first <= t <= last}
    assert points == pytest.approx(expected_closes, rel=1e-9)

    # Kafka: every interval's topic holds the bars as OHLCVBar JSON keyed by symbol
    for interval in settings.interval_list:
        records = topic_records(settings, settings.bar_topic(interval))
        assert {key for key, _ in records} == {b"BTC-USD"}
        on_topic = {orjson.loads(v)["window_start"]: orjson.loads(v) for _, v in records}
        in_db = stored[stored["interval"] == interval.name]
        assert len(on_topic) == len(in_db)
        for row in in_db.itertuples():
            record = on_topic[row.window_start.isoformat().replace("+00:00", "Z")]
            assert (record["open"], record["close"], record["is_final"]) == (
                row.open,
                row.close,
                row.is_final,
            )
            assert record["last_receipt_time"] is not None


def test_late_ticks_inside_the_watermark_revise_bars_older_ones_are_dropped_and_counted(
    spark: SparkSession, fresh_env: Settings
) -> None:
    settings = fresh_env  # watermark 2 minutes
    symbol = "LATE-USD"
    produce_ticks(
        settings,
        [
            tick(symbol, "2023-09-05T16:00:10", 100.0),
            tick(symbol, "2023-09-05T16:16:00", 101.0),
            tick(symbol, "2023-09-05T16:20:00", 102.0),  # watermark -> 16:18:00
        ],
    )
    run_available_now(spark, settings)
    first = fetch_bars(settings, symbol)
    assert bar(first, "5m", "2023-09-05T16:15:00")["trade_count"] == 1
    final = {(b.interval, b.window_start.isoformat()[11:16]) for b in first.itertuples() if b.is_final}
    assert final == {("1m", "16:00"), ("1m", "16:16"), ("5m", "16:00"), ("15m", "16:00")}

    dropped_before = late_rows_dropped()
    produce_ticks(
        settings,
        [
            tick(symbol, "2023-09-05T16:18:30", 110.0, size=2.0),  # 90 s late: inside the watermark
            tick(symbol, "2023-09-05T16:05:00", 90.0),  # older than the watermark: dropped
            tick(symbol, "2023-09-05T16:17:30", 80.0),  # older too, though its 5m window is open: dropped
        ],
    )
    run_available_now(spark, settings)
    second = fetch_bars(settings, symbol)

    revised = bar(second, "5m", "2023-09-05T16:15:00")
    ohlc = (revised["open"], revised["high"], revised["low"], revised["close"])
    assert ohlc == (101.0, 110.0, 101.0, 110.0)
    assert (revised["trade_count"], revised["volume"]) == (2, 3.0)
    assert revised["vwap"] == pytest.approx((101.0 + 220.0) / 3.0, rel=1e-12)
    assert bar(second, "15m", "2023-09-05T16:15:00")["trade_count"] == 3
    assert bar(second, "1m", "2023-09-05T16:18:00")["close"] == 110.0
    assert bar(second, "1m", "2023-09-05T16:17:00") is None
    assert bar(second, "1m", "2023-09-05T16:05:00") is None
    assert bar(second, "5m", "2023-09-05T16:05:00") is None
    assert bar(second, "15m", "2023-09-05T16:00:00")["trade_count"] == 1
    assert len(second) == len(first) + 1  # only the new 1m bar at 16:18

    deadline = time.monotonic() + 30
    while late_rows_dropped() - dropped_before < 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # the progress listener runs asynchronously
    assert late_rows_dropped() - dropped_before == 2


def test_the_coinbase_hour_replayed_twice_gives_the_reference_bars(
    spark: SparkSession, fresh_env: Settings, shared_data: Path, coinbase_bars: dict[str, pd.DataFrame]
) -> None:
    csv = shared_data / COINBASE_HOUR_CSV
    before = metrics.DUPLICATES_DROPPED._value.get()
    assert replay_file(fresh_env, csv, "coinbase_csv").produced == 5882
    run_available_now(spark, fresh_env)  # the first replay in bars, then the same file again
    assert replay_file(fresh_env, csv, "coinbase_csv").produced == 5882
    run_available_now(spark, fresh_env)
    stored = fetch_bars(fresh_env)
    for interval, reference in coinbase_bars.items():
        assert_equal_to_reference(stored[stored["interval"] == interval], reference)
    # the copies older than the watermark (last event time - 2 min) are dropped as late, the rest as copies
    timestamps = load_trades_csv(csv)["timestamp"]
    copies = int((timestamps > timestamps.max().floor("ms") - pd.Timedelta(minutes=2)).sum())
    deadline = time.monotonic() + 30
    while metrics.DUPLICATES_DROPPED._value.get() - before < copies and time.monotonic() < deadline:
        time.sleep(0.1)  # the progress listener runs asynchronously
    assert metrics.DUPLICATES_DROPPED._value.get() - before == copies > 0


def test_a_failing_sink_fails_the_batch_and_the_rerun_completes_it(
    spark: SparkSession, fresh_env: Settings
) -> None:
    symbol = "FAIL-USD"
    produce_ticks(
        fresh_env, [tick(symbol, "2023-09-05T10:00:05", 50.0), tick(symbol, "2023-09-05T10:01:05", 51.0)]
    )
    broken = fresh_env.model_copy(  # unreachable InfluxDB: an outage, waited for up to sink_outage_max_s
        update={"influx_url": "http://127.0.0.1:9", "sink_outage_max_s": 1.0, "sink_retry_backoff_s": 0.05}
    )
    with pytest.raises(StreamingQueryException):
        run_available_now(spark, broken)
    assert topic_records(fresh_env, fresh_env.bar_topic(fresh_env.interval_list[0])) == []

    run_available_now(spark, fresh_env)
    stored = fetch_bars(fresh_env, symbol)
    assert len(stored) == 2 + 1 + 1
    assert len(topic_records(fresh_env, fresh_env.bar_topic(fresh_env.interval_list[0]))) == 2
    series = export_series(fresh_env, "ohlcv_close")
    assert any(s["metric"].get("symbol") == symbol for s in series)


def test_a_stop_while_a_store_is_unreachable_ends_the_job_and_the_next_run_completes_the_batch(
    spark: SparkSession, fresh_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    symbol = "STOP-USD"
    produce_ticks(
        fresh_env, [tick(symbol, "2023-09-05T10:00:05", 50.0), tick(symbol, "2023-09-05T10:01:05", 51.0)]
    )
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    unreachable = fresh_env.model_copy(  # Redis down: waited for up to sink_outage_max_s (1 h)
        update={"redis_url": f"redis://127.0.0.1:{closed.getsockname()[1]}/0"}
    )
    OUTAGES.up("redis")  # no outage left over from an earlier test of this process
    stop = threading.Event()
    job = start_bar_job(spark, unreachable, stopping=stop)
    try:
        deadline = time.monotonic() + 120
        while not OUTAGES.is_down("redis"):  # the batch waiting for Redis
            assert time.monotonic() < deadline and all(q.exception() is None for q in job.queries)
            time.sleep(0.1)
        stop.set()  # what SIGTERM or Ctrl-C does
        job.wait(stop)  # no error: the unfinished batch is left to the next run
    finally:
        closed.close()
        OUTAGES.up("redis")  # this process's outage state as the next tests expect it (Redis is up)
    assert not any(query.isActive for query in job.queries)
    out = capsys.readouterr().out
    assert "sink write given up: the job is stopping" in out
    assert "query stopped during a batch; the next start re-runs the batch" in out
    assert topic_records(fresh_env, fresh_env.bar_topic(fresh_env.interval_list[0])) == []  # Kafka: last

    run_available_now(spark, fresh_env)
    assert len(fetch_bars(fresh_env, symbol)) == 2 + 1 + 1
    assert len(topic_records(fresh_env, fresh_env.bar_topic(fresh_env.interval_list[0]))) == 2
