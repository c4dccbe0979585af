"""Pushes over ``/ws`` from a real API process: ticks from Kafka (the fast path), bars, indicators and
anomalies from Redis pub/sub, back-pressure on a slow client, and two processes sharing the fan-out."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import httpx
import orjson
import redis
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from infra.local.servers import ApiServer
from tests.api.conftest import API_KEY
from tests.api.seed import SYMBOL, Seeded, bar_model, ticks_of
from tests.api.wsclient import (
    Message,
    TickProducer,
    close_code,
    drain,
    live,
    open_ws,
    receive,
    receive_until,
    request,
    subscribe,
    trade_ids,
)
from tickflow.keys import ANOMALIES_CHANNEL, bars_channel, indicators_channel


def now_us() -> int:
    return int(time.time() * 1_000_000)


def stage_counts(server: ApiServer) -> dict[str, float]:
    """``tickflow_stage_latency_seconds_count`` of the API process by stage."""
    exposition = httpx.get(f"{server.url}/metrics", headers={"X-API-Key": API_KEY}, timeout=10).text
    return {
        sample.labels["stage"]: sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "tickflow_stage_latency_seconds_count"
    }


def test_trades_arrive_from_kafka_in_order_and_stop_after_unsubscribe(
    api_server: ApiServer, seeded: Seeded
) -> None:
    first, second = seeded.trades.iloc[:300], seeded.trades.iloc[300:600]
    producer = TickProducer(api_server.settings)
    before = stage_counts(api_server)
    frames = 0  # trades frames the clients received
    with open_ws(api_server) as leaving, open_ws(api_server) as witness:
        for ws in (leaving, witness):
            receive(ws)
            subscribe(ws, [SYMBOL], ["trades"])
        producer.send(ticks_of(first, now_us()))
        producer.flush()
        for ws in (leaving, witness):
            got = receive_until(ws, lambda m: first.trade_id.iloc[-1] in trade_ids([m]))
            assert trade_ids(got) == list(first.trade_id)
            frames += sum(m["type"] == "trades" for m in got)
        tick = next(m for m in got if m["type"] == "trades")["data"][0]
        assert tick == orjson.loads(ticks_of(first.iloc[:1], tick["receipt_time"])[0].to_wire())

        reply = request(leaving, {"type": "unsubscribe", "symbols": [SYMBOL], "channels": ["trades"]})
        assert reply == {"type": "unsubscribed", "id": None, "subscriptions": {}}
        producer.send(ticks_of(second, now_us()))
        producer.flush()
        got = receive_until(witness, lambda m: second.trade_id.iloc[-1] in trade_ids([m]))
        assert trade_ids(got) == list(second.trade_id)
        frames += sum(m["type"] == "trades" for m in got)
        assert trade_ids(drain(leaving, quiet_s=0.5)) == []
    # the broker stage once for every tick read; the fast path once for every trades frame a client was
    # sent (measured at the send, per client, not once per batch queued)
    counts = stage_counts(api_server)
    assert counts["broker"] - before.get("broker", 0) == 600
    assert counts["fast_path"] - before.get("fast_path", 0) == frames >= 3


def test_bars_indicators_and_anomalies_are_pushed_from_redis_pubsub(
    api_server: ApiServer, seeded: Seeded
) -> None:
    bars = seeded.bars["1m"]
    first_revision = bar_model(bars.iloc[0], datetime.now(UTC)).model_copy(
        update={"close": bars["open"].iloc[0], "trade_count": 1, "is_final": False}
    )
    final_revision = bar_model(bars.iloc[0], datetime.now(UTC))
    five_minute = bar_model(seeded.bars["5m"].iloc[0], datetime.now(UTC))
    indicator = {"symbol": SYMBOL, "interval": "1m", "window_start": "2023-09-05T16:00:00Z", "sma_20": 1.5}
    anomaly = seeded.anomalies[0].to_json()
    publisher = redis.Redis.from_url(api_server.settings.redis_url)
    with open_ws(api_server) as ws:
        receive(ws)
        subscribe(ws, [SYMBOL], ["bars:1m", "indicators:1m", "anomalies"])
        for channel, payload in [
            (bars_channel(SYMBOL), five_minute.to_json()),  # not subscribed: 5m
            (bars_channel(SYMBOL), b"{not json"),  # ignored, counted
            (bars_channel(SYMBOL), first_revision.to_json()),
            (bars_channel(SYMBOL), final_revision.to_json()),
            (indicators_channel(SYMBOL), orjson.dumps(indicator)),
            (indicators_channel("ETH-USD"), orjson.dumps({**indicator, "symbol": "ETH-USD"})),
            (ANOMALIES_CHANNEL, anomaly),
        ]:
            publisher.publish(channel, payload)
        pushed = live(receive_until(ws, lambda m: m["type"] == "anomaly"))
    publisher.close()
    assert [(m["type"], m.get("interval")) for m in pushed] == [
        ("bar", "1m"),
        ("bar", "1m"),
        ("indicators", "1m"),
        ("anomaly", None),
    ]
    assert [m["data"]["trade_count"] for m in pushed[:2]] == [1, int(bars["trade_count"].iloc[0])]
    assert pushed[1]["data"] == orjson.loads(final_revision.to_json())
    assert pushed[2]["data"] == indicator
    assert pushed[3]["symbol"] == SYMBOL and pushed[3]["data"] == orjson.loads(anomaly)


def test_slow_client_is_warned_then_closed_while_a_fast_client_keeps_receiving(
    api_server: ApiServer, seeded: Seeded
) -> None:
    """Server queue: 100 messages, grace 1 s. The slow client reads one message per 100 ms through a small
    socket buffer; the fast client reads as fast as it can. Ticks flow at ~5,000/s until the slow client
    is closed."""
    producer = TickProducer(api_server.settings)
    fast_log: list[tuple[float, Message]] = []
    slow_log: list[Message] = []
    slow_code: list[int | None] = []
    slow_closed, production_over = threading.Event(), threading.Event()

    def read_fast(ws: ClientConnection) -> None:
        while True:
            try:
                message = receive(ws, 1.0)
            except TimeoutError:
                if production_over.is_set():
                    return
            else:
                fast_log.append((time.time(), message))

    def read_slowly(ws: ClientConnection) -> None:
        warned_at = None
        try:  # slow until 1.5 s after the warning (past the grace period), then read what is left
            while warned_at is None or time.monotonic() - warned_at < 1.5:
                slow_log.append(receive(ws, 20))
                if slow_log[-1].get("code") == "SLOW_CONSUMER" and warned_at is None:
                    warned_at = time.monotonic()
                time.sleep(0.1)
            slow_code.append(close_code(ws, timeout_s=20))
        except ConnectionClosed as closed:
            slow_code.append(closed.rcvd.code if closed.rcvd else None)
        finally:
            slow_closed.set()

    with open_ws(api_server) as fast, open_ws(api_server, rcvbuf=4096, max_queue=2) as slow:
        for ws in (fast, slow):
            receive(ws)
            subscribe(ws, [SYMBOL], ["trades"])
        readers = [
            threading.Thread(target=read_fast, args=(fast,)),
            threading.Thread(target=read_slowly, args=(slow,)),
        ]
        for reader in readers:
            reader.start()
        produced: list[str] = []
        deadline = time.monotonic() + 30
        for round_ in range(100):
            for start in range(0, len(seeded.trades), 50):
                chunk = seeded.trades.iloc[start : start + 50]
                chunk = chunk.assign(trade_id=chunk.trade_id + f"-{round_}")
                producer.send(ticks_of(chunk, now_us()))
                produced += list(chunk.trade_id)
                time.sleep(0.01)
                if slow_closed.is_set() or time.monotonic() > deadline:
                    break
            if slow_closed.is_set() or time.monotonic() > deadline:
                break
        producer.flush()
        production_over.set()
        for reader in readers:
            reader.join(30)

    assert slow_code == [1008]
    warnings = [m for m in slow_log if m["type"] == "warning"]
    assert warnings and warnings[0]["code"] == "SLOW_CONSUMER" and warnings[0]["dropped"] >= 1
    assert len(trade_ids(slow_log)) < len(produced)

    fast_messages = [m for _, m in fast_log]
    assert not [m for m in fast_messages if m["type"] in ("warning", "error")]
    assert trade_ids(fast_messages) == produced
    delays = sorted(
        arrived - tick["receipt_time"] / 1e6
        for arrived, m in fast_log
        if m["type"] == "trades"
        for tick in m["data"]
    )
    median = delays[len(delays) // 2]
    print(f"fast client: {len(delays)} ticks, median {median * 1e3:.1f} ms, max {delays[-1] * 1e3:.1f} ms")
    assert median < 0.5


def test_two_api_processes_deliver_the_same_bar_and_ticks_from_the_end_of_the_topic(
    api_server: ApiServer, seeded: Seeded
) -> None:
    """A second process starts after ticks were produced: it delivers only later ticks (the broker may
    answer "latest" with a stale offset), and both processes deliver a bar published once to Redis."""
    producer = TickProducer(api_server.settings)
    old, new = seeded.trades.iloc[1000:1500], seeded.trades.iloc[1500:1600]
    producer.send(ticks_of(old.assign(trade_id=old.trade_id + "-old"), now_us()))
    producer.flush()
    second = ApiServer(api_server.settings, api_server.log.with_name("api-second.log")).start()
    try:
        with open_ws(api_server) as ws1, open_ws(second) as ws2:
            for ws in (ws1, ws2):
                receive(ws)
                subscribe(ws, [SYMBOL], ["bars:5m", "trades"])
            bar = bar_model(seeded.bars["5m"].iloc[3], datetime.now(UTC))
            publisher = redis.Redis.from_url(api_server.settings.redis_url)
            assert publisher.publish(bars_channel(SYMBOL), bar.to_json()) >= 2  # one subscriber per process
            publisher.close()
            producer.send(ticks_of(new, now_us()))
            producer.flush()
            for ws in (ws1, ws2):
                got = receive_until(ws, lambda m: new.trade_id.iloc[-1] in trade_ids([m]))
                if not any(m["type"] == "bar" for m in live(got)):
                    got += receive_until(ws, lambda m: m["type"] == "bar" and not m.get("snapshot"))
                assert trade_ids(got) == list(new.trade_id)
                assert [m["data"] for m in live(got) if m["type"] == "bar"] == [orjson.loads(bar.to_json())]
    finally:
        second.stop()
