"""REST endpoints of a real API process over the real Coinbase hour in PostgreSQL and Redis."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pandas as pd
import pytest
import redis

from infra.local.servers import ApiServer
from tests.api.conftest import API_KEY
from tests.api.seed import MODEL_VERSION, SYMBOL, UNLISTED, Seeded
from tickflow.keys import bar_key, latest_price_key


@pytest.fixture(scope="module")
def client(api_server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server.url, headers={"X-API-Key": API_KEY}, timeout=10) as http:
        yield http


def get_all(client: httpx.Client, path: str, **params: object) -> list[dict]:
    """Every item of a paged endpoint, following ``next_cursor``; asserts each page is within the limit."""
    items: list[dict] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= int(params.get("limit", 1000))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_symbols_lists_configured_then_unlisted_symbols_with_data(
    client: httpx.Client, seeded: Seeded
) -> None:
    symbols = client.get("/api/v1/symbols").json()["symbols"]
    configured = [s["symbol"] for s in symbols if s["listed"]]
    assert configured == ["BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD", "ADA-USD", "DOGE-USD"]
    assert [s["symbol"] for s in symbols if not s["listed"]] == [UNLISTED]


def test_latest_reads_redis_first(client: httpx.Client, seeded: Seeded) -> None:
    body = client.get(f"/api/v1/latest/{SYMBOL.lower()}").json()
    last = seeded.trades.iloc[-1]
    assert body == {
        "symbol": SYMBOL,
        "price": last.price,
        "time": body["time"],
        "source": "redis",
    }
    assert utc(body["time"]) == last.timestamp.to_pydatetime()


def test_latest_falls_back_to_postgres_without_redis_keys(
    client: httpx.Client, seeded: Seeded, api_server: ApiServer
) -> None:
    store = redis.Redis.from_url(api_server.settings.redis_url)
    keys = [latest_price_key(SYMBOL), bar_key(SYMBOL, "1m")]
    store.delete(*keys)
    try:
        body = client.get(f"/api/v1/latest/{SYMBOL}").json()
    finally:
        store.mset({k: seeded.redis_values[k] for k in keys})
        store.close()
    trades = seeded.trades
    newest = trades[trades["timestamp"] == trades["timestamp"].max()]
    assert body["source"] == "postgres"
    assert body["price"] in set(newest["price"])
    assert utc(body["time"]) == newest["timestamp"].iloc[0].to_pydatetime()


def test_latest_of_a_listed_symbol_without_data_is_404(client: httpx.Client) -> None:
    response = client.get("/api/v1/latest/ETH-USD")
    assert response.status_code == 404
    assert "no price for ETH-USD" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/latest/NOPE-USD",
        "/api/v1/ticks/NOPE-USD",
        "/api/v1/bars/NOPE-USD",
        "/api/v1/indicators/NOPE-USD",
        "/api/v1/predictions/NOPE-USD",
        "/api/v1/anomalies?symbol=NOPE-USD",
        "/api/v1/ticks/bad%20symbol!",
    ],
)
def test_unknown_symbols_are_404(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "unknown symbol" in response.json()["detail"]


def test_ticks_pages_through_every_trade_in_order(client: httpx.Client, seeded: Seeded) -> None:
    items = get_all(client, f"/api/v1/ticks/{SYMBOL}", limit=1000)
    expected = seeded.trades.sort_values(["timestamp", "trade_id"], kind="stable")
    assert len(items) == len(expected) == 5882
    assert [i["trade_id"] for i in items] == list(expected["trade_id"])
    assert [i["price"] for i in items] == list(expected["price"])
    assert [i["size"] for i in items] == list(expected["amount"])
    assert items[0]["exchange"] == "coinbase"
    assert utc(items[0]["event_time"]) == expected["timestamp"].iloc[0].to_pydatetime()


def test_ticks_time_range_is_half_open_and_descending_order_works(
    client: httpx.Client, seeded: Seeded
) -> None:
    start, end = "2023-09-05T16:10:00Z", "2023-09-05T16:20:00Z"
    trades = seeded.trades
    in_range = trades[(trades["timestamp"] >= start) & (trades["timestamp"] < end)]
    items = get_all(client, f"/api/v1/ticks/{SYMBOL}", start=start, end=end, limit=300, order="desc")
    assert len(items) == len(in_range) > 0
    times = [utc(i["event_time"]) for i in items]
    assert times == sorted(times, reverse=True)
    assert (
        datetime(2023, 9, 5, 16, 10, tzinfo=UTC)
        <= times[-1]
        <= times[0]
        < datetime(2023, 9, 5, 16, 20, tzinfo=UTC)
    )


@pytest.mark.parametrize("interval", ["1m", "5m", "15m"])
def test_bars_equal_reference_bars(client: httpx.Client, seeded: Seeded, interval: str) -> None:
    items = get_all(client, f"/api/v1/bars/{SYMBOL}", interval=interval, limit=7)
    reference = seeded.bars[interval]
    assert len(items) == len(reference)
    for item, (_, ref) in zip(items, reference.iterrows(), strict=True):
        assert utc(item["window_start"]) == ref["window_start"].to_pydatetime()
        for field in ("open", "high", "low", "close", "trade_count"):
            assert item[field] == ref[field], (field, item, ref)
        for field in ("volume", "quote_volume", "vwap"):
            assert math.isclose(item[field], ref[field], rel_tol=1e-12), (field, item, ref)


def test_bars_latest_bar_revision_comes_from_redis(client: httpx.Client, seeded: Seeded) -> None:
    """PostgreSQL holds an early revision of the last 1m bar; the API serves Redis's newer one."""
    page = client.get(f"/api/v1/bars/{SYMBOL}", params={"interval": "1m", "order": "desc", "limit": 1})
    last = page.json()["items"][0]
    reference = seeded.bars["1m"].iloc[-1]
    assert last["trade_count"] == reference["trade_count"]
    assert last["is_final"] is True
    assert page.json()["next_cursor"] is not None


def test_aggregated_is_an_alias_of_bars(client: httpx.Client, seeded: Seeded) -> None:
    """`/aggregated/{symbol}` (the name before the one bar vocabulary) serves exactly what `/bars` does."""
    params = {"interval": "5m", "limit": 3}
    alias = client.get(f"/api/v1/aggregated/{SYMBOL}", params=params)
    assert alias.status_code == 200
    assert alias.json() == client.get(f"/api/v1/bars/{SYMBOL}", params=params).json()
    assert len(alias.json()["items"]) == 3


def test_indicators_merge_postgres_history_with_the_latest_row_in_redis(
    client: httpx.Client, seeded: Seeded
) -> None:
    items = get_all(client, f"/api/v1/indicators/{SYMBOL}", interval="1m", limit=25)
    expected = seeded.indicators
    assert len(items) == len(expected)
    assert [utc(i["window_start"]) for i in items] == [t.to_pydatetime() for t in expected["window_start"]]
    assert items[-1]["close"] == expected["close"].iloc[-1]
    for item, sma in zip(items, expected["sma_20"], strict=True):
        assert (item["sma_20"] is None) if pd.isna(sma) else math.isclose(item["sma_20"], sma, rel_tol=1e-12)
    assert items[-1]["rsi_14"] is None


def test_anomalies_since_and_symbol_filter(client: httpx.Client, seeded: Seeded) -> None:
    everything = client.get("/api/v1/anomalies").json()["items"]
    assert [(a["anomaly_type"], utc(a["event_time"])) for a in everything] == [
        (a.anomaly_type.value, a.event_time) for a in seeded.anomalies
    ]
    since = seeded.anomalies[1].event_time
    later = client.get("/api/v1/anomalies", params={"since": since.isoformat(), "symbol": SYMBOL}).json()
    assert [utc(a["event_time"]) for a in later["items"]] == [a.event_time for a in seeded.anomalies[1:]]
    assert client.get("/api/v1/anomalies", params={"symbol": "ETH-USD"}).json()["items"] == []


def test_predictions_newest_first_with_the_newest_from_redis(client: httpx.Client, seeded: Seeded) -> None:
    items = client.get(f"/api/v1/predictions/{SYMBOL}", params={"interval": "1m"}).json()["items"]
    expected = seeded.predictions.iloc[::-1]
    assert [utc(p["window_start"]) for p in items] == [t.to_pydatetime() for t in expected["window_start"]]
    assert {p["model_version"] for p in items} == {MODEL_VERSION}
    assert [p["base_close"] for p in items] == list(expected["base_close"])


def test_unlisted_symbol_with_stored_bars_is_served(client: httpx.Client) -> None:
    page = client.get(f"/api/v1/bars/{UNLISTED}", params={"interval": "1m"}).json()
    assert len(page["items"]) == 5
    assert client.get(f"/api/v1/ticks/{UNLISTED}").json()["items"] == []


@pytest.mark.parametrize(
    ("path", "params", "loc"),
    [
        (f"/api/v1/bars/{SYMBOL}", {"interval": "2m"}, "interval"),
        (f"/api/v1/bars/{SYMBOL}", {"limit": 0}, "limit"),
        (f"/api/v1/bars/{SYMBOL}", {"limit": 10_001}, "limit"),
        (f"/api/v1/bars/{SYMBOL}", {"order": "sideways"}, "order"),
        (f"/api/v1/ticks/{SYMBOL}", {"start": "yesterday"}, "start"),
        (f"/api/v1/ticks/{SYMBOL}", {"start": "2023-09-05T17:00:00Z", "end": "2023-09-05T16:00:00Z"}, "end"),
        (f"/api/v1/ticks/{SYMBOL}", {"cursor": "not-a-cursor"}, "cursor"),
        (f"/api/v1/indicators/{SYMBOL}", {"interval": "1h"}, "interval"),
        ("/api/v1/anomalies", {"since": "0001-01-01T00:00:00+05:00"}, "since"),
    ],
)
def test_bad_parameters_are_422_with_the_parameter_named(
    client: httpx.Client, path: str, params: dict, loc: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(e["loc"][-1] == loc and e["msg"] for e in errors), errors


def test_a_cursor_of_another_endpoint_is_422(client: httpx.Client) -> None:
    cursor = client.get(f"/api/v1/ticks/{SYMBOL}", params={"limit": 1}).json()["next_cursor"]
    response = client.get(f"/api/v1/bars/{SYMBOL}", params={"cursor": cursor})
    assert response.status_code == 422
    assert "another endpoint" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": API_KEY[:-1]}])
def test_api_requires_a_valid_key(api_server: ApiServer, headers: dict[str, str]) -> None:
    response = httpx.get(f"{api_server.url}/api/v1/symbols", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "ApiKey"
    assert "API key" in response.json()["detail"]


def test_every_configured_key_is_accepted(api_server: ApiServer) -> None:
    for key in api_server.settings.api_keys:
        assert httpx.get(f"{api_server.url}/api/v1/symbols", headers={"X-API-Key": key}).status_code == 200


def test_operational_endpoints(api_server: ApiServer, client: httpx.Client) -> None:
    ready = httpx.get(f"{api_server.url}/ready")
    assert ready.status_code == 200
    assert {name: check["ok"] for name, check in ready.json()["checks"].items()} == {
        "postgres": True,
        "redis": True,
        "kafka": True,
        "influx": True,
    }
    assert httpx.get(f"{api_server.url}/live").json() == {"status": "ok"}
    health = httpx.get(f"{api_server.url}/health").json()
    assert health["tick_feed_positioned"] and health["pubsub_connected"]
    client.get(f"/api/v1/latest/{SYMBOL}")
    metrics = client.get("/metrics").text
    assert 'tickflow_api_requests_total{method="GET",route="/api/v1/latest/{symbol}",status="200"}' in metrics
    assert "tickflow_api_ws_clients" in metrics
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_cors_allows_configured_origins(api_server: ApiServer) -> None:
    response = httpx.options(
        f"{api_server.url}/api/v1/symbols",
        headers={"Origin": "http://dashboard.example", "Access-Control-Request-Method": "GET"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
