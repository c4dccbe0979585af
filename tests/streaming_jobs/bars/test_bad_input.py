"""Bad records between real ticks never corrupt bars nor stop the bar job: they end in the dead-letter
topic with their reason, and the job runs on (real Kafka, Spark's connector, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pandas as pd
import psycopg2
import pytest
from pyspark.sql import SparkSession

from streaming_jobs.bars.job import start_bar_job
from tests.conftest import COINBASE_HOUR_CSV
from tests.reference_bars import load_trades_csv
from tests.streaming_jobs.bars.support import (
    assert_equal_to_reference,
    fetch_bars,
    produce,
    produce_ticks,
    tick,
    topic_records,
)
from tickflow.schemas import Tick
from tickflow.settings import Settings

pytestmark = pytest.mark.spark


def poison(**changes: object) -> bytes:
    """A well-formed tick record with ``changes`` (JSON: a NUL is a valid ``\\u0000`` escape)."""
    good = tick("BTC-USD", "2023-09-05T16:30:00", 25800.0)
    return orjson.dumps({**good.model_dump(mode="json"), **changes})


def test_poison_ticks_go_to_the_dlq_and_bars_stay_exact(
    spark: SparkSession, fresh_env: Settings, shared_data: Path, coinbase_bars: dict[str, pd.DataFrame]
) -> None:
    trades = load_trades_csv(shared_data / COINBASE_HOUR_CSV)
    ticks = [
        Tick(
            exchange="coinbase",
            symbol=row.symbol,
            raw_symbol=row.symbol,
            price=row.price,
            size=row.amount,
            side=row.side,
            trade_id=str(number),
            event_time=int(row.timestamp.value // 1000),
            receipt_time=int(row.timestamp.value // 1000) + 1000,
            source="replay",
        )
        for number, row in enumerate(trades.itertuples(), start=1)
    ]
    produce_ticks(fresh_env, ticks[:2000])
    produce(
        fresh_env,
        [
            (b"BTC-USD", poison(trade_id="55\u000012345")),  # PostgreSQL text cannot hold NUL
            (b"BTC-USD", poison(event_time=4_070_908_800_000_000)),  # 2099: would poison the watermark
        ],
    )
    produce_ticks(fresh_env, ticks[2000:])
    start_bar_job(spark, fresh_env, available_now=True).wait()

    stored = fetch_bars(fresh_env)
    for interval, reference in coinbase_bars.items():
        assert_equal_to_reference(stored[stored["interval"] == interval], reference)
    letters = [orjson.loads(value) for _, value in topic_records(fresh_env, fresh_env.topic_dlq)]
    assert sorted(letter["reason"] for letter in letters) == ["bad_trade_id", "future_event_time"]
    assert all(letter["topic"] == fresh_env.topic_ticks and letter["detail"] for letter in letters)

    # the watermark stayed in 2023: ticks produced afterwards still make bars
    produce_ticks(fresh_env, [tick("AFTER-USD", "2023-09-05T17:10:00", 10.0)])
    start_bar_job(spark, fresh_env, available_now=True).wait()
    assert len(fetch_bars(fresh_env, "AFTER-USD")) == 3


def test_a_tick_the_database_refuses_goes_to_the_dlq_and_the_rest_is_stored(
    spark: SparkSession, fresh_env: Settings
) -> None:
    with psycopg2.connect(fresh_env.postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE tick_data ADD CONSTRAINT no_test_ids CHECK (trade_id <> 'refuse-me')")
    conn.close()
    ticks = [tick("REF-USD", f"2023-09-05T10:00:{s:02d}", 100.0 + s) for s in range(20)]
    refused = ticks[7].model_copy(update={"trade_id": "refuse-me"})
    ticks[7] = refused
    produce_ticks(fresh_env, ticks)
    start_bar_job(spark, fresh_env, available_now=True).wait()

    with psycopg2.connect(fresh_env.postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM tick_data WHERE symbol = 'REF-USD'")
        assert cur.fetchone()[0] == 19
    conn.close()
    letters = [orjson.loads(value) for _, value in topic_records(fresh_env, fresh_env.topic_dlq)]
    assert [letter["reason"] for letter in letters] == ["store_rejected"]
    assert "no_test_ids" in letters[0]["detail"]
    assert orjson.loads(letters[0]["raw"])["trade_id"] == "refuse-me"
    assert fetch_bars(fresh_env, "REF-USD").query("interval == '1m'")["trade_count"].sum() == 20
