"""REST latest values answered from the API process's memory, fed by its pub/sub and Kafka feeds.

SOL-USD has no row in PostgreSQL and no key in Redis: whatever ``/latest`` or ``/bars`` return for it
can only come from what the process saw on its feeds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import orjson
import redis
from prometheus_client.parser import text_string_to_metric_families

from infra.local.servers import ApiServer
from tests.api.conftest import API_KEY
from tests.api.seed import Seeded, bar_model, ticks_of
from tests.api.wsclient import TickProducer
from tickflow.keys import bar_key, bars_channel, indicators_channel, indicators_key, latest_price_key

SYMBOL = "SOL-USD"


def get(server: ApiServer, path: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", headers={"X-API-Key": API_KEY}, timeout=10)


def poll(server: ApiServer, path: str, done: Callable[[dict], bool]) -> dict:
    """GET ``path`` until ``done(body)`` (the feed has delivered); the last body."""
    deadline = time.monotonic() + 10
    while True:
        body = get(server, path).json()
        if done(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def latest_requests_ok(server: ApiServer) -> float:
    """``tickflow_api_requests_total`` of ``/latest`` answered 200, from the server's ``/metrics``."""
    for family in text_string_to_metric_families(get(server, "/metrics").text):
        if family.name == "tickflow_api_requests":
            return sum(
                s.value
                for s in family.samples
                if s.name.endswith("_total")
                and s.labels["route"] == "/api/v1/latest/{symbol}"
                and s.labels["status"] == "200"
            )
    return 0.0


def test_latest_values_come_from_memory_and_follow_pubsub_and_ticks(
    api_server: ApiServer, seeded: Seeded
) -> None:
    store = redis.Redis.from_url(api_server.settings.redis_url)
    assert store.exists(latest_price_key(SYMBOL), bar_key(SYMBOL, "1m"), indicators_key(SYMBOL, "1m")) == 0
    assert get(api_server, f"/api/v1/latest/{SYMBOL}").status_code == 404  # nothing seen yet
    bars = seeded.bars["1m"]
    first = bar_model(bars.iloc[10], datetime.now(UTC)).model_copy(update={"symbol": SYMBOL})
    store.publish(bars_channel(SYMBOL), first.to_json())
    indicator = {
        "symbol": SYMBOL,
        "interval": "1m",
        "window_start": first.window_start.isoformat(),
        "sma_20": 3.0,
    }
    store.publish(indicators_channel(SYMBOL), orjson.dumps(indicator))

    body = poll(api_server, f"/api/v1/latest/{SYMBOL}", lambda b: b.get("source") == "memory")
    assert body == {
        "symbol": SYMBOL,
        "price": first.close,
        "time": body["time"],
        "source": "memory",
    }
    assert datetime.fromisoformat(body["time"]) == first.last_trade_time
    # The lean path of /latest keeps the route's rules: the key is checked, the symbol normalised.
    assert httpx.get(f"{api_server.url}/api/v1/latest/{SYMBOL}").status_code == 401
    counted = latest_requests_ok(api_server)
    assert get(api_server, f"/api/v1/latest/{SYMBOL.lower()}").json() == body
    assert get(api_server, f"/api/v1/latest/{SYMBOL}").json() == body
    assert latest_requests_ok(api_server) == counted + 2  # still counted by the metrics middleware
    page = get(api_server, f"/api/v1/bars/{SYMBOL}?interval=1m").json()
    assert page["items"] == [orjson.loads(first.model_dump_json())]
    rows = poll(api_server, f"/api/v1/indicators/{SYMBOL}?interval=1m", lambda b: bool(b["items"]))["items"]
    assert [(r["window_start"], r["sma_20"]) for r in rows] == [
        (first.model_dump(mode="json")["window_start"], 3.0)
    ]

    # A later bar on pub/sub replaces it.
    second = bar_model(bars.iloc[11], datetime.now(UTC)).model_copy(update={"symbol": SYMBOL})
    store.publish(bars_channel(SYMBOL), second.to_json())
    body = poll(api_server, f"/api/v1/latest/{SYMBOL}", lambda b: b["price"] == second.close)
    assert (body["price"], body["source"]) == (second.close, "memory")

    # A tick from the Kafka fast path, later than the bar's last trade, replaces that.
    trades = seeded.trades
    later = trades[trades["timestamp"] > bars["window_end"].iloc[11]].iloc[:1].assign(symbol=SYMBOL)
    producer = TickProducer(api_server.settings)
    producer.send(ticks_of(later, int(time.time() * 1e6)))
    producer.flush()
    body = poll(api_server, f"/api/v1/latest/{SYMBOL}", lambda b: b["price"] == later.price.iloc[0])
    assert (body["price"], body["source"]) == (later.price.iloc[0], "memory")
    assert datetime.fromisoformat(body["time"]) == later.timestamp.iloc[0].to_pydatetime()

    # Redis holding something else does not matter: memory answers first.
    store.set(latest_price_key(SYMBOL), orjson.dumps({"price": 1.0, "time": "2020-01-01T00:00:00Z"}))
    try:
        assert get(api_server, f"/api/v1/latest/{SYMBOL}").json()["price"] == later.price.iloc[0]
    finally:
        store.delete(latest_price_key(SYMBOL))
        store.close()
