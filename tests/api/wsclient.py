"""Test helpers: WebSocket clients of a real API process and a tick producer to its Kafka topic."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from confluent_kafka import Producer
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from infra.local.servers import ApiServer
from tests.api.conftest import API_KEY
from tickflow.schemas import Tick
from tickflow.settings import Settings

Message = dict[str, Any]


def open_ws(
    server: ApiServer,
    key: str | None = API_KEY,
    via: str = "header",
    rcvbuf: int | None = None,
    source: str | None = None,
    **kwargs: Any,
) -> ClientConnection:
    """A connected client; the key goes in the ``X-API-Key`` header (``via="header"``), an ``Authorization:
    Bearer`` header (``"bearer"``), the ``api_key`` query parameter (``"query"``) or the first message
    (``"message"``: the ``authenticated`` reply is read here).

    ``rcvbuf`` shrinks the socket's receive buffer (a client whose reads the server soon feels);
    ``source`` is the loopback address the client connects from (e.g. ``127.0.0.2``).
    """
    url = server.ws_url
    headers = {}
    if key is not None and via == "header":
        headers["X-API-Key"] = key
    elif key is not None and via == "bearer":
        headers["Authorization"] = f"Bearer {key}"
    elif key is not None and via == "query":
        url += f"?api_key={key}"
    sock = None
    if rcvbuf is not None or source is not None:
        sock = socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source is not None:
            sock.bind((source, 0))
        sock.connect(("127.0.0.1", server.port))
    if via == "message":  # used before the caller's `with`
        kwargs["legacy"] = True
    ws = connect(url, additional_headers=headers, sock=sock, open_timeout=10, **kwargs)
    if key is not None and via == "message":
        ws.send(orjson.dumps({"type": "auth", "api_key": key}).decode())
        assert receive(ws)["type"] == "authenticated"
    return ws


def receive(ws: ClientConnection, timeout_s: float = 10.0) -> Message:
    return orjson.loads(ws.recv(timeout=timeout_s))


def request(ws: ClientConnection, payload: Message | str | bytes, timeout_s: float = 10.0) -> Message:
    """Send a request and return the first reply (pushes and heartbeats before it are skipped)."""
    ws.send(payload if isinstance(payload, str | bytes) else orjson.dumps(payload).decode())
    return receive_until(ws, lambda m: m["type"] not in PUSH_TYPES, timeout_s)[-1]


PUSH_TYPES = frozenset({"heartbeat", "price", "trades", "bar", "indicators", "anomaly"})


def receive_until(
    ws: ClientConnection, done: Callable[[Message], bool], timeout_s: float = 10.0
) -> list[Message]:
    """Messages up to and including the first for which ``done`` is true.

    Raises:
        TimeoutError: none arrived within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    messages = []
    while True:
        message = receive(ws, max(deadline - time.monotonic(), 0.001))
        messages.append(message)
        if done(message):
            return messages


def drain(ws: ClientConnection, quiet_s: float) -> list[Message]:
    """Messages that arrive until none has arrived for ``quiet_s``."""
    messages = []
    while True:
        try:
            messages.append(receive(ws, quiet_s))
        except TimeoutError:
            return messages


def close_code(ws: ClientConnection, timeout_s: float = 10.0) -> int | None:
    """Read until the server closes the connection; its close code."""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(deadline - time.monotonic(), 0.001))
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    raise TimeoutError("connection still open")


def subscribe(ws: ClientConnection, symbols: list[str], channels: list[str]) -> Message:
    reply = request(ws, {"type": "subscribe", "symbols": symbols, "channels": channels})
    assert reply["type"] == "subscribed", reply
    return reply


def live(messages: Iterable[Message]) -> list[Message]:
    """The messages that are neither snapshots nor heartbeats."""
    return [m for m in messages if not m.get("snapshot") and m["type"] != "heartbeat"]


def trade_ids(messages: Iterable[Message]) -> list[str]:
    return [t["trade_id"] for m in messages if m["type"] == "trades" for t in m["data"]]


class TickProducer:
    """Produces tick wire records to the settings' tick topic, key = symbol."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic_ticks
        self._producer = Producer(
            {"bootstrap.servers": settings.kafka_bootstrap_servers, "linger.ms": 1, "acks": "all"}
        )

    def send(self, ticks: Iterable[Tick]) -> None:
        for tick in ticks:
            self._producer.produce(self.topic, key=tick.symbol, value=tick.to_wire())
            self._producer.poll(0)

    def flush(self) -> None:
        assert self._producer.flush(10) == 0
