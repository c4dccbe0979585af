"""Live serving over ``/ws`` from a real API process: the snapshot before live updates, conflation with
``throttle_ms``, high priority, and no repeated revisions.

Each test works on symbols and bars of its own (the Coinbase bars relabelled), so the state the process
remembers from other tests does not interfere.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import redis

from infra.local.servers import ApiServer
from tests.api.conftest import API_KEY
from tests.api.seed import Seeded, bar_model, ticks_of
from tests.api.wsclient import (
    Message,
    TickProducer,
    drain,
    live,
    open_ws,
    receive,
    receive_until,
    request,
    subscribe,
    trade_ids,
)
from tickflow.keys import ANOMALIES_CHANNEL, bar_key, bars_channel, indicators_channel
from tickflow.schemas import OHLCVBar


def relabelled(seeded: Seeded, interval: str, index: int, symbol: str) -> OHLCVBar:
    """A reference bar of BTC-USD as a bar of ``symbol``, revised now."""
    return bar_model(seeded.bars[interval].iloc[index], datetime.now(UTC)).model_copy(
        update={"symbol": symbol}
    )


def revisions(first: OHLCVBar, count: int) -> list[OHLCVBar]:
    """``count`` distinct revisions of the same bar (one more trade each, closing higher); valid bars."""
    return [
        OHLCVBar.model_validate(
            first.model_dump()
            | {
                "trade_count": first.trade_count + n,
                "close": first.close + n / 100,
                "high": max(first.high, first.close + n / 100),
            }
        )
        for n in range(count)
    ]


def wait_for_latest(server: ApiServer, symbol: str, price: float) -> None:
    """Poll ``/latest`` until the process serves ``price`` from memory (its feed has caught up)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body = httpx.get(f"{server.url}/api/v1/latest/{symbol}", headers={"X-API-Key": API_KEY}).json()
        if body.get("source") == "memory" and body["price"] == price:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{symbol} at {price} not in memory")


def test_snapshot_of_each_channel_comes_before_live_updates(api_server: ApiServer, seeded: Seeded) -> None:
    symbol = "ADA-USD"
    first, second = revisions(relabelled(seeded, "1m", 20, symbol), 2)
    indicator = {
        "symbol": symbol,
        "interval": "1m",
        "window_start": first.window_start.isoformat(),
        "rsi_14": 55.5,
    }
    in_redis_only = relabelled(seeded, "5m", 2, symbol)  # this process never saw it on pub/sub
    publisher = redis.Redis.from_url(api_server.settings.redis_url)
    publisher.set(bar_key(symbol, "5m"), in_redis_only.to_json())
    publisher.publish(bars_channel(symbol), first.to_json())
    publisher.publish(indicators_channel(symbol), orjson.dumps(indicator))
    wait_for_latest(api_server, symbol, first.close)
    try:
        with open_ws(api_server) as ws:
            receive(ws)
            ws.send(
                orjson.dumps(
                    {
                        "type": "subscribe",
                        "symbols": [symbol],
                        "channels": ["trades", "bars:1m", "bars:5m", "indicators:1m", "anomalies"],
                    }
                ).decode()
            )
            got = receive_until(ws, lambda m: m["type"] == "subscribed")
            publisher.publish(bars_channel(symbol), second.to_json())
            got += receive_until(ws, lambda m: m["type"] == "bar" and not m.get("snapshot"))
    finally:
        publisher.delete(bar_key(symbol, "5m"))
        publisher.close()
    got = [m for m in got if m["type"] != "heartbeat"]
    assert got[0]["type"] == "subscribed"
    snapshots = got[1:-1]
    assert all(m["snapshot"] is True for m in snapshots)
    by_channel = {(m["type"], m.get("interval")): m["data"] for m in snapshots}
    assert set(by_channel) == {("price", None), ("bar", "1m"), ("bar", "5m"), ("indicators", "1m")}
    assert by_channel["price", None]["price"] == first.close
    assert by_channel["price", None]["source"] == "memory"
    assert by_channel["bar", "1m"] == orjson.loads(first.to_json())
    assert by_channel["bar", "5m"] == orjson.loads(in_redis_only.to_json())
    assert by_channel["indicators", "1m"] == indicator
    assert "snapshot" not in got[-1] and got[-1]["data"] == orjson.loads(second.to_json())


def test_throttled_subscription_sends_at_most_one_message_per_interval_ending_with_the_latest(
    api_server: ApiServer, seeded: Seeded
) -> None:
    """100 revisions published 10 ms apart (about 1 s): the unthrottled client gets all of them, the one
    with ``throttle_ms=100`` about one per 100 ms of the publishing span, the last one the final revision."""
    symbol = "DOGE-USD"
    published = revisions(relabelled(seeded, "1m", 30, symbol), 100)
    publisher = redis.Redis.from_url(api_server.settings.redis_url)
    with open_ws(api_server) as every, open_ws(api_server) as throttled:
        for ws in (every, throttled):
            receive(ws)
        subscribe(every, [symbol], ["bars:1m"])
        reply = request(
            throttled, {"type": "subscribe", "symbols": [symbol], "channels": ["bars:1m"], "throttle_ms": 100}
        )
        assert reply["type"] == "subscribed"
        started = time.monotonic()
        for revision in published:
            publisher.publish(bars_channel(symbol), revision.to_json())
            time.sleep(0.01)
        span_s = time.monotonic() - started
        last = orjson.loads(published[-1].to_json())
        all_of_them = live(receive_until(every, lambda m: m.get("data") == last))
        throttled_got = live(drain(throttled, quiet_s=1.0))
    publisher.close()
    assert [m["data"]["trade_count"] for m in all_of_them] == [r.trade_count for r in published]
    assert 1 <= len(throttled_got) <= span_s / 0.1 + 2, (len(throttled_got), span_s)
    assert throttled_got[-1]["data"] == last


def test_throttled_trades_are_batched_without_losing_any(api_server: ApiServer, seeded: Seeded) -> None:
    trades = seeded.trades.iloc[3000:3300].assign(symbol="XRP-USD")
    producer = TickProducer(api_server.settings)
    with open_ws(api_server) as ws:
        receive(ws)
        reply = request(
            ws, {"type": "subscribe", "symbols": ["XRP-USD"], "channels": ["trades"], "throttle_ms": 100}
        )
        assert reply["type"] == "subscribed"
        started = time.monotonic()
        for start in range(0, len(trades), 10):
            producer.send(ticks_of(trades.iloc[start : start + 10], int(time.time() * 1e6)))
            producer.flush()
            time.sleep(0.01)
        span_s = time.monotonic() - started
        got = live(receive_until(ws, lambda m: trades.trade_id.iloc[-1] in trade_ids([m])))
    assert trade_ids(got) == list(trades.trade_id)
    assert len(got) <= span_s / 0.1 + 2, (len(got), span_s)


def test_high_priority_bypasses_the_throttle(api_server: ApiServer, seeded: Seeded) -> None:
    symbol = "ADA-USD"
    published = revisions(relabelled(seeded, "15m", 1, symbol), 20)
    publisher = redis.Redis.from_url(api_server.settings.redis_url)
    options = {"type": "subscribe", "symbols": [symbol], "channels": ["bars:15m"], "throttle_ms": 5000}
    with open_ws(api_server) as high, open_ws(api_server) as normal:
        for ws in (high, normal):
            receive(ws)
        assert request(high, {**options, "priority": "high"})["type"] == "subscribed"
        assert request(normal, options)["type"] == "subscribed"
        for revision in published:
            publisher.publish(bars_channel(symbol), revision.to_json())
        last = orjson.loads(published[-1].to_json())
        high_got = live(receive_until(high, lambda m: m.get("data") == last))
        normal_got = live(drain(normal, quiet_s=1.0))
    publisher.close()
    assert [m["data"]["trade_count"] for m in high_got] == [r.trade_count for r in published]
    assert len(normal_got) < len(published)  # held back: at most one message per 5 s


def test_a_repeated_revision_is_pushed_once(api_server: ApiServer, seeded: Seeded) -> None:
    """A re-run publishes the same bar and indicator row again (a later ``updated_at`` at most): not pushed;
    a revision that changed is."""
    symbol = "XRP-USD"
    bar = relabelled(seeded, "1m", 40, symbol)
    rerun = bar.model_copy(update={"updated_at": bar.updated_at + timedelta(minutes=5)})
    changed = bar.model_copy(update={"volume": bar.volume + 1.0})
    indicator = {
        "symbol": symbol,
        "interval": "1m",
        "window_start": bar.window_start.isoformat(),
        "sma_20": 2.5,
    }
    sentinel = seeded.anomalies[0].model_copy(update={"symbol": symbol}).to_json()
    publisher = redis.Redis.from_url(api_server.settings.redis_url)
    with open_ws(api_server) as ws:
        receive(ws)
        subscribe(ws, [symbol], ["bars:1m", "indicators:1m", "anomalies"])
        for channel, payload in [
            (bars_channel(symbol), bar.to_json()),
            (bars_channel(symbol), bar.to_json()),
            (indicators_channel(symbol), orjson.dumps(indicator)),
            (bars_channel(symbol), rerun.to_json()),
            (indicators_channel(symbol), orjson.dumps({**indicator, "updated_at": "2030-01-01T00:00:00Z"})),
            (bars_channel(symbol), changed.to_json()),
            (ANOMALIES_CHANNEL, sentinel),
        ]:
            publisher.publish(channel, payload)
        pushed: list[Message] = live(receive_until(ws, lambda m: m["type"] == "anomaly"))
    publisher.close()
    assert [m["type"] for m in pushed] == ["bar", "indicators", "bar", "anomaly"]
    assert pushed[0]["data"] == orjson.loads(bar.to_json())
    assert pushed[2]["data"] == orjson.loads(changed.to_json())
