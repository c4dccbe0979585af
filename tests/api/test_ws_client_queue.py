"""``WsClient`` in-process: priority in a full queue and conflation of throttled subscriptions.

The socket is a recorder of the frames the client's sender task writes (the starlette ``WebSocket``
methods it calls); the queue, throttle timers and sender are the real ones.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson

from api.metrics import ApiMetrics
from api.ws.client import Subscription, WsClient
from api.ws.protocol import data_frame

BARS = ("bars:1m", "BTC-USD")
TRADES = ("trades", "BTC-USD")


class RecordingSocket:
    """The frames written by the sender task, in order."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.closed: int | None = None

    async def send_text(self, text: str) -> None:
        self.sent.append(orjson.loads(text))

    async def close(self, code: int, reason: str) -> None:
        self.closed = code


def new_client(queue_size: int) -> tuple[WsClient, RecordingSocket]:
    socket = RecordingSocket()
    return WsClient(cast(Any, socket), queue_size, 60.0, ApiMetrics()), socket


async def send_all(client: WsClient) -> None:
    """Run the sender until the queues are empty, then close the connection."""
    sender = asyncio.create_task(client.run())
    while client.queued:
        await asyncio.sleep(0.001)
    client.close(1000, "done")
    await sender


def bar(n: int) -> str:
    return data_frame("bar", "BTC-USD", orjson.dumps({"n": n}), "1m")


def test_a_full_queue_drops_normal_messages_first_and_sends_high_priority_ahead() -> None:
    async def scenario() -> list[Any]:
        client, socket = new_client(queue_size=4)
        client.subscribe(BARS, Subscription())
        client.subscribe(TRADES, Subscription(high=True))
        accepted = [client.deliver(BARS, bar(n)) for n in range(4)]
        high = data_frame("trades", "BTC-USD", b'[{"trade_id":"h1"}]')
        accepted.append(client.deliver(TRADES, high))  # evicts bar 0
        accepted.append(client.deliver(BARS, bar(4)))  # dropped: the queue is full
        for n in (2, 3, 4, 5):
            client.deliver(TRADES, data_frame("trades", "BTC-USD", orjson.dumps([{"trade_id": f"h{n}"}])))
        assert accepted == [True, True, True, True, True, False]
        await send_all(client)
        return socket.sent

    sent = asyncio.run(scenario())
    assert sent[0]["code"] == "SLOW_CONSUMER"
    # h2..h4 evicted bars 1..3; h5 found only high-priority messages queued and was dropped.
    assert [m["data"][0]["trade_id"] for m in sent[1:] if m["type"] == "trades"] == ["h1", "h2", "h3", "h4"]
    assert [m for m in sent[1:] if m["type"] == "bar"] == []


def test_throttled_bars_send_only_the_latest_and_trades_are_batched() -> None:
    async def scenario() -> list[Any]:
        client, socket = new_client(queue_size=100)
        client.subscribe(BARS, Subscription(throttle_s=0.05))
        client.subscribe(TRADES, Subscription(throttle_s=0.05))
        for n in range(5):
            assert client.deliver(BARS, bar(n))
            tick = orjson.dumps({"trade_id": str(n)})
            assert client.deliver(TRADES, data_frame("trades", "BTC-USD", b"[" + tick + b"]"), [tick])
        assert client.queued == 0  # all held back within the first interval
        await asyncio.sleep(0.2)
        client.deliver(BARS, bar(5))  # past the interval: queued at once
        await send_all(client)
        return socket.sent

    sent = asyncio.run(scenario())
    assert sorted(m["type"] for m in sent) == ["bar", "bar", "trades"]
    bars = [m["data"]["n"] for m in sent if m["type"] == "bar"]
    assert bars == [4, 5]
    trades = [m for m in sent if m["type"] == "trades"]
    assert len(trades) == 1 and [t["trade_id"] for t in trades[0]["data"]] == ["0", "1", "2", "3", "4"]


def test_high_priority_and_anomaly_subscriptions_are_never_throttled() -> None:
    anomalies = ("anomalies", "BTC-USD")

    async def scenario() -> list[Any]:
        client, socket = new_client(queue_size=100)
        client.subscribe(BARS, Subscription(throttle_s=0.05, high=True))
        client.subscribe(anomalies, Subscription(throttle_s=0.05))
        for n in range(5):
            client.deliver(BARS, bar(n))
            client.deliver(anomalies, data_frame("anomaly", "BTC-USD", orjson.dumps({"n": n})))
        await send_all(client)
        return socket.sent

    sent = asyncio.run(scenario())
    assert [m["data"]["n"] for m in sent if m["type"] == "bar"] == [0, 1, 2, 3, 4]
    assert [m["data"]["n"] for m in sent if m["type"] == "anomaly"] == [0, 1, 2, 3, 4]
