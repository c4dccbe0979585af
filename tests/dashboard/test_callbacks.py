"""The Dash callbacks, called over Dash's own HTTP endpoint (``/_dash-update-component``) in-process, with
the real API behind them: the candles equal the bars the API serves."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
import redis
from confluent_kafka import Producer
from flask.testing import FlaskClient

from dashboard.app import create_app
from infra.local.sandbox import free_port
from infra.local.servers import ApiServer, basic_authorization
from tests.dashboard.conftest import API_KEY
from tests.dashboard.seed import BTC, SKL, Seeded
from tickflow.keys import ML_STATUS_KEY
from tickflow.schemas import Tick
from tickflow.settings import Settings

CHART_OUTPUTS = [
    ("chart", "figure"),
    ("quote", "children"),
    ("status", "children"),
    ("notice", "children"),
    ("notice", "className"),
    ("anomalies", "children"),
]


def client_of(settings: Settings) -> FlaskClient:
    """A Flask test client of the dashboard of ``settings``, logged in (auth is on)."""
    client = create_app(settings).server.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = basic_authorization(API_KEY)
    return client


@pytest.fixture(scope="module")
def dash_client(app_settings: Settings) -> FlaskClient:
    return client_of(app_settings)


@pytest.fixture(scope="module")
def api(api_server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server.url, headers={"X-API-Key": API_KEY}, timeout=10) as client:
        yield client


def call(
    client: FlaskClient,
    outputs: list[tuple[str, str]],
    inputs: list[tuple[str, str, Any]],
) -> dict[str, Any]:
    """Run the callback of ``outputs`` as the browser would; its ``response`` (id -> property -> value)."""
    names = [f"{i}.{p}" for i, p in outputs]
    multi = len(outputs) > 1
    body = {
        "output": f"..{'...'.join(names)}.." if multi else names[0],
        "outputs": [{"id": i, "property": p} for i, p in outputs]
        if multi
        else {"id": outputs[0][0], "property": outputs[0][1]},
        "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
        "state": [],
        "changedPropIds": [f"{inputs[0][0]}.{inputs[0][1]}"],
    }
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code == 200, response.text
    return response.get_json()["response"]


def chart(
    client: FlaskClient,
    symbol: str,
    interval: str,
    range_key: str,
    types: list[str] | None = None,
    severities: list[str] | None = None,
) -> dict[str, Any]:
    inputs = [("refresh", "n_intervals", 1), ("symbol", "value", symbol), ("interval", "value", interval)]
    filters = [("anomaly-types", "value", types), ("anomaly-severities", "value", severities)]
    return call(client, CHART_OUTPUTS, [*inputs, ("range", "value", range_key), *filters])


def array(value: Any) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array ``{"dtype", "bdata"}``."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value)


def trace(figure: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in figure["data"] if t.get("name") == name)


def times(values: Any) -> list[pd.Timestamp]:
    return [pd.Timestamp(str(v)) for v in array(values)]


def api_items(api: httpx.Client, path: str, **params: Any) -> pd.DataFrame:
    response = api.get(path, params={**params, "limit": 10_000})
    assert response.status_code == 200, response.text
    items = pd.DataFrame(response.json()["items"])
    items["window_start"] = pd.to_datetime(items["window_start"], utc=True).dt.tz_localize(None)
    return items


@pytest.mark.parametrize(("symbol", "interval"), [(BTC, "1m"), (BTC, "5m"), (BTC, "15m"), (SKL, "5m")])
def test_candles_equal_the_bars_served_by_the_api(
    dash_client: FlaskClient, api: httpx.Client, symbol: str, interval: str
) -> None:
    figure = chart(dash_client, symbol, interval, "Max")["chart"]["figure"]
    served = api_items(api, f"/api/v1/bars/{symbol}", interval=interval)
    candles = trace(figure, "OHLC")
    assert candles["type"] == "candlestick"
    assert times(candles["x"]) == list(served["window_start"])
    for column in ("open", "high", "low", "close"):
        assert list(array(candles[column])) == list(served[column])
    assert list(array(trace(figure, "VWAP")["y"])) == list(served["vwap"])
    assert list(array(trace(figure, "Volume")["y"])) == list(served["volume"])


@pytest.mark.parametrize(("interval", "count"), [("1m", 60), ("5m", 12), ("15m", 4)])
def test_the_hour_range_shows_the_reference_bars(
    dash_client: FlaskClient, seeded: Seeded, interval: str, count: int
) -> None:
    response = chart(dash_client, BTC, interval, "1H")
    candles = trace(response["chart"]["figure"], "OHLC")
    reference = seeded.bars[(BTC, interval)]
    assert len(array(candles["close"])) == count == len(reference)
    assert list(array(candles["close"])) == list(reference["close"])
    assert response["notice"]["className"] == "notice hidden"


def test_indicator_panels_equal_the_indicators_served_by_the_api(
    dash_client: FlaskClient, api: httpx.Client
) -> None:
    figure = chart(dash_client, BTC, "1m", "Max")["chart"]["figure"]
    served = api_items(api, f"/api/v1/indicators/{BTC}", interval="1m")
    for name, column in (
        ("RSI 14", "rsi_14"),
        ("MACD", "macd"),
        ("Signal", "macd_signal"),
        ("BB upper", "bb_upper"),
    ):
        shown = trace(figure, name)
        assert times(shown["x"]) == list(served["window_start"])
        np.testing.assert_array_equal(array(shown["y"]).astype(float), served[column].astype(float))


def test_empty_unknown_and_unreachable_say_what_is_missing(
    dash_client: FlaskClient, app_settings: Settings
) -> None:
    def message(response: dict[str, Any]) -> str:
        return response["chart"]["figure"]["layout"]["annotations"][0]["text"]

    empty = chart(dash_client, "ETH-USD", "5m", "1H")
    assert message(empty) == "No bars yet for ETH-USD 5m"
    assert empty["chart"]["figure"]["data"] == []
    assert "unknown symbol" in message(chart(dash_client, "NOPE-USD", "1m", "1H"))

    nowhere = client_of(app_settings.model_copy(update={"api_url": f"http://127.0.0.1:{free_port()}"}))
    offline = chart(nowhere, BTC, "1m", "1H")
    assert message(offline).startswith(f"No bars for {BTC} 1m: API unreachable (ConnectError")
    assert offline["notice"]["className"] == "notice"
    assert "OFFLINE" in str(offline["status"]["children"])


def health_cards(client: FlaskClient, symbol: str, interval: str) -> dict[str, dict[str, str]]:
    """Run the health callback: title -> {"value", "detail", "level"} of each card."""
    inputs = [("refresh", "n_intervals", 1), ("symbol", "value", symbol), ("interval", "value", interval)]
    response = call(client, [("health", "children")], [*inputs, ("range", "value", "1H")])
    tiles = response["health"]["children"]
    cards = {}
    for tile in tiles:
        title, value, detail = (part["props"]["children"] for part in tile["props"]["children"])
        cards[title] = {"value": value, "detail": detail, "level": tile["props"]["className"].split()[-1]}
    return cards


def produce_ticks(settings: Settings, count: int) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    now_us = int(time.time() * 1e6)
    for n in range(count):
        tick = Tick(
            exchange="coinbase",
            symbol=BTC,
            raw_symbol=BTC,
            price=25_000.0 + n,
            size=0.01,
            trade_id=f"dash-{now_us}-{n}",
            event_time=now_us + n,
            receipt_time=now_us + n,
            source="replay",
        )
        producer.produce(settings.topic_ticks, tick.to_wire(), key=BTC)
    assert producer.flush(10) == 0


def test_health_callback_measures_the_ingest_rate_of_the_api_tick_feed(
    app_settings: Settings, api: httpx.Client, seeded: Seeded
) -> None:
    client = client_of(app_settings.model_copy(update={"dashboard_cache_ttl_s": 0.0}))

    def consumed() -> float:
        lines = api.get("/metrics").text.splitlines()
        return next(
            float(line.split()[1]) for line in lines if line.startswith("tickflow_api_ticks_consumed_total ")
        )

    first = health_cards(client, BTC, "1m")
    assert first["API"]["value"] == "ready" and first["Ingest rate"]["detail"] == "API tick feed: measuring"
    assert first["Bar freshness"]["level"] == "unknown" and "unreachable" in first["Bar freshness"]["detail"]
    newest = seeded.bars[(BTC, "1m")].iloc[-1]
    assert first["Last bar update"]["detail"] == f"1m bar of {newest['window_start']:%Y-%m-%d %H:%M} UTC"
    before, started = consumed(), time.monotonic()
    produce_ticks(app_settings, 300)
    deadline = time.monotonic() + 10
    while consumed() < before + 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert consumed() == before + 300
    time.sleep(max(0.0, 0.6 - (time.monotonic() - started)))  # rates need scrapes >= 0.5 s apart
    ingest = health_cards(client, BTC, "1m")["Ingest rate"]
    assert float(ingest["value"].split()[0].replace(",", "")) > 0 and ingest["level"] == "ok"
    assert ingest["detail"] == f"API tick feed, {before + 300:,.0f} total"


def table_rows(response: dict[str, Any]) -> list[tuple[str, str]]:
    """(type, severity) of each row of the anomalies table in a chart response."""
    table = response["anomalies"]["children"]
    if table["type"] != "Table":
        return []
    body = table["props"]["children"][1]["props"]["children"]
    return [
        (
            row["props"]["children"][2]["props"]["children"],
            row["props"]["children"][3]["props"]["children"]["props"]["children"],
        )
        for row in body
    ]


def test_the_anomaly_table_filters_by_type_and_severity(dash_client: FlaskClient) -> None:
    shown = table_rows(chart(dash_client, BTC, "1m", "Max"))
    assert len(set(shown)) >= 2  # the seed has anomalies of more than one kind
    kind, severity = shown[0]
    wanted = chart(dash_client, BTC, "1m", "Max", types=[kind.replace(" ", "_")], severities=[severity])
    filtered = table_rows(wanted)
    assert filtered and set(filtered) == {(kind, severity)}
    assert len(filtered) >= shown.count((kind, severity))
    other = next(s for s in ("info", "warning", "critical") if s != severity)
    assert {s for _, s in table_rows(chart(dash_client, BTC, "1m", "Max", severities=[other]))} <= {other}


def test_the_model_and_its_live_score_are_written_beside_the_predictions(app_settings: Settings) -> None:
    store = redis.Redis.from_url(app_settings.redis_url)
    status = {
        "symbol": BTC,
        "interval": "1m",
        "state": "predicting",
        "model_version": "naive-test",
        "band": 0.9,
        "scored_bars": 5,
        "rmse_vs_naive": 1.0,
        "band_coverage": 0.8,
    }
    client = client_of(app_settings.model_copy(update={"dashboard_cache_ttl_s": 0}))
    try:
        store.set(
            ML_STATUS_KEY, orjson.dumps({"updated_at": "2026-01-05T12:00:00+00:00", "series": [status]})
        )
        figure = chart(client, BTC, "1m", "Max")["chart"]["figure"]
        notes = [a["text"] for a in figure["layout"]["annotations"]]
        assert (
            "Prediction: model naive-test · RMSE/naive 1.000 · band 80% (nominal 90%) · 5 bars scored"
            in notes
        )
        assert trace(figure, "Predicted close")  # beside the drawn predictions
        store.delete(ML_STATUS_KEY)
        figure = chart(client, BTC, "1m", "Max")["chart"]["figure"]
        assert not any(a["text"].startswith("Prediction:") for a in figure["layout"]["annotations"])
    finally:
        store.delete(ML_STATUS_KEY)
        store.close()
