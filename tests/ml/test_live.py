"""Live prediction on final bars (PostgreSQL + Redis), the Redis wake-up, and the scheduled retrain."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import orjson
import pandas as pd
import psycopg2
import psycopg2.extensions
import pytest
import redis
from structlog.testing import capture_logs

from ml.features import make_dataset
from ml.live import DISCOVERY_INTERVAL_S, ML_STATUS_TTL_S, PredictionService
from ml.predict import PREDICTION_COLUMNS
from tests.ml.seed import insert_bars, insert_indicators
from tests.support.seed import indicator_rows
from tickflow.keys import ML_STATUS_KEY, bars_channel, prediction_key
from tickflow.settings import Settings

SERIES = ("BTC-USD", "1m")
STORED_COLUMNS = tuple(c for c in PREDICTION_COLUMNS if c not in ("symbol", "interval"))


@pytest.fixture
def btc_db(ml_db: Settings, coinbase_bars: dict[str, pd.DataFrame]) -> Settings:
    """The Coinbase hour's 1m bars and indicators; the last two bars are still open (not final)."""
    bars = coinbase_bars["1m"]
    insert_bars(ml_db.postgres_dsn, bars.iloc[:-2])
    insert_bars(ml_db.postgres_dsn, bars.iloc[-2:], final=False)
    insert_indicators(ml_db.postgres_dsn, indicator_rows(bars))
    return ml_db


@pytest.fixture
def conn(btc_db: Settings) -> Iterator[psycopg2.extensions.connection]:
    connection = psycopg2.connect(btc_db.postgres_dsn)
    connection.autocommit = True
    yield connection
    connection.close()


@pytest.fixture
def client(btc_db: Settings) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(btc_db.redis_url)
    connection.delete(prediction_key(*SERIES))
    yield connection
    connection.close()


def _stored(conn: psycopg2.extensions.connection) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {', '.join(STORED_COLUMNS)} FROM predictions WHERE symbol = %s AND interval = %s"
            " ORDER BY window_start",
            SERIES,
        )
        rows = cur.fetchall()
    return pd.DataFrame(rows, columns=list(STORED_COLUMNS))


def test_each_final_bar_gets_one_prediction_in_postgres_and_redis(
    btc_db: Settings, conn, client, coinbase_bars: dict[str, pd.DataFrame]
) -> None:
    bars = coinbase_bars["1m"]
    service = PredictionService(btc_db, ["BTC-USD"], ["1m"])
    service.step(conn, client)  # no model registered yet: trains one, then predicts from 16:57

    stored = _stored(conn)
    model = service.models[SERIES]
    assert service.registry.versions(*SERIES) == [model.info.version]
    assert list(stored["window_start"]) == [pd.Timestamp("2023-09-05T16:58Z")]
    row = stored.iloc[0]
    assert row["model_version"] == model.info.version
    assert row["base_close"] == bars["close"].iloc[-3]
    assert row["lower"] < row["predicted_close"] < row["upper"]
    assert row["predicted_close"] == pytest.approx(
        row["base_close"] * (1 + row["predicted_return"]), rel=1e-12
    )

    # Live features equal training features: predicting offline from the full stored history agrees.
    dataset = make_dataset(bars.iloc[:-2], "1m", indicator_rows(bars))
    offline = model.predict(dataset.features.iloc[-1:], dataset.close.iloc[-1:])
    assert row["predicted_close"] == pytest.approx(offline["predicted_close"].iloc[0], rel=1e-12)

    payload = orjson.loads(client.get(prediction_key(*SERIES)))
    assert payload["window_start"] == "2023-09-05T16:58:00+00:00"
    assert payload["base_window_start"] == "2023-09-05T16:57:00+00:00"
    assert payload["predicted_close"] == row["predicted_close"] and payload["band"] == 0.9
    assert 0 < client.ttl(prediction_key(*SERIES)) <= btc_db.redis_prediction_ttl_s

    assert service.step(conn, client).empty  # nothing new
    insert_bars(btc_db.postgres_dsn, bars.iloc[-2:], final=True)  # the watermark passes two bars
    new = service.step(conn, client)
    assert list(new["window_start"]) == [pd.Timestamp("2023-09-05T16:59Z"), pd.Timestamp("2023-09-05T17:00Z")]
    assert len(_stored(conn)) == 3
    assert orjson.loads(client.get(prediction_key(*SERIES)))["window_start"] == "2023-09-05T17:00:00+00:00"


def test_retrain_happens_when_the_interval_has_passed(btc_db: Settings, conn, client, coinbase_bars) -> None:
    now = [0.0]
    service = PredictionService(btc_db, ["BTC-USD"], ["1m"], clock=lambda: now[0])
    service.step(conn, client)
    first = service.models[SERIES].info.version
    now[0] = 23.9 * 3600
    service.step(conn, client)
    assert service.registry.versions(*SERIES) == [first]
    now[0] = 24.1 * 3600
    insert_bars(btc_db.postgres_dsn, coinbase_bars["1m"].iloc[-2:-1], final=True)
    service.step(conn, client)
    second = service.models[SERIES].info.version
    assert service.registry.versions(*SERIES) == [first, second]
    assert list(_stored(conn)["model_version"]) == [first, second]  # the new bar used the new model


def test_serve_wakes_on_a_bar_message(btc_db: Settings, conn, client, coinbase_bars) -> None:
    settings = btc_db.model_copy(update={"predict_poll_s": 60.0})  # only the Redis message can be this quick
    service = PredictionService(settings, ["BTC-USD"], ["1m"])
    stop = threading.Event()
    thread = threading.Thread(target=service.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        _wait_for(lambda: len(_stored(conn)) == 1, timeout=60)  # start-up: trains, predicts from 16:57
        _wait_for(lambda: client.pubsub_numsub(bars_channel("BTC-USD"))[0][1] == 1, timeout=10)
        insert_bars(btc_db.postgres_dsn, coinbase_bars["1m"].iloc[-2:-1], final=True)
        client.publish(bars_channel("BTC-USD"), b"{}")
        _wait_for(lambda: len(_stored(conn)) == 2, timeout=10)
        assert _stored(conn)["window_start"].iloc[-1] == pd.Timestamp("2023-09-05T16:59Z")
    finally:
        stop.set()
        client.publish(bars_channel("BTC-USD"), b"{}")
        thread.join(timeout=10)
    assert not thread.is_alive()


def _wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.05)


def test_series_that_appear_later_get_a_model_without_waiting_for_the_retrain(
    ml_db: Settings, coinbase_bars: dict[str, pd.DataFrame]
) -> None:
    now = [0.0]
    service = PredictionService(ml_db, ["BTC-USD"], ["1m"], clock=lambda: now[0])
    connection = psycopg2.connect(ml_db.postgres_dsn)
    connection.autocommit = True
    client = redis.Redis.from_url(ml_db.redis_url)
    try:
        assert service.step(connection, client).empty and not service.models  # nothing stored yet
        insert_bars(ml_db.postgres_dsn, coinbase_bars["1m"].iloc[:20])
        now[0] = DISCOVERY_INTERVAL_S
        assert service.step(connection, client).empty and not service.models  # too few bars to train
        insert_bars(ml_db.postgres_dsn, coinbase_bars["1m"])
        now[0] = DISCOVERY_INTERVAL_S * 1.5
        assert service.step(connection, client).empty  # not due yet
        now[0] = DISCOVERY_INTERVAL_S * 2
        rows = service.step(connection, client)
        assert list(rows["window_start"]) == [pd.Timestamp("2023-09-05T17:00Z")]
        assert len(service.registry.versions(*SERIES)) == 1
    finally:
        connection.close()
        client.close()


def test_status_says_what_the_service_waits_for_then_the_model_it_predicts_with(
    ml_db: Settings, coinbase_bars: dict[str, pd.DataFrame]
) -> None:
    now = [0.0]
    service = PredictionService(ml_db, ["BTC-USD"], ["1m"], clock=lambda: now[0])
    connection = psycopg2.connect(ml_db.postgres_dsn)
    connection.autocommit = True
    client = redis.Redis.from_url(ml_db.redis_url)
    try:
        insert_bars(ml_db.postgres_dsn, coinbase_bars["1m"].iloc[:20])
        with capture_logs() as logs:
            service.step(connection, client)
        waiting = orjson.loads(client.get(ML_STATUS_KEY))["series"]
        assert [(s["symbol"], s["state"], s["missing_bars"]) for s in waiting] == [("BTC-USD", "waiting", 11)]
        assert {"event": "ml.waiting", "more_final_bars": 11} in [
            {k: e[k] for k in ("event", "more_final_bars") if k in e} for e in logs
        ]
        insert_bars(ml_db.postgres_dsn, coinbase_bars["1m"])
        now[0] = DISCOVERY_INTERVAL_S
        with capture_logs() as logs:
            service.step(connection, client)
        version = service.models[SERIES].info.version
        [status] = orjson.loads(client.get(ML_STATUS_KEY))["series"]
        assert (status["state"], status["model_version"], status["missing_bars"]) == (
            "predicting",
            version,
            None,
        )
        assert status["last_base"] == "2023-09-05T16:59:00+00:00"  # predicts the 17:00 bar
        assert [e["event"] for e in logs if e["event"].startswith("ml.")][:3] == [
            "ml.training",
            "ml.trained",
            "ml.predicting",
        ]
        assert 0 < client.ttl(ML_STATUS_KEY) <= ML_STATUS_TTL_S
    finally:
        connection.close()
        client.close()
