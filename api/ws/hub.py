"""Fan-out of one API process: subscriptions by (channel, symbol) and delivery into client queues.

Everything here runs on the event loop and never awaits: a message is serialised once and handed to each
subscriber (``WsClient.deliver``: queued, or held by the subscription's throttle), so publishing costs
O(subscribers) appends however slow the clients are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from api.metrics import ApiMetrics
from api.ws.client import TRADES, Subscription, TimedFrame, Topic, WsClient
from api.ws.protocol import ErrorCode, ProtocolError, data_frame, frame, now_iso


class Hub:
    """Connected clients and who subscribed to what."""

    def __init__(self, metrics: ApiMetrics, max_subscriptions: int) -> None:
        self._metrics = metrics
        self._max_subscriptions = max_subscriptions
        self._subscribers: dict[Topic, set[WsClient]] = {}
        self.clients: set[WsClient] = set()

    def connect(self, client: WsClient) -> None:
        self.clients.add(client)
        self._metrics.ws_clients.set(len(self.clients))

    def disconnect(self, client: WsClient) -> None:
        self.unsubscribe(client, list(client.subscriptions))
        self.clients.discard(client)
        self._metrics.ws_clients.set(len(self.clients))

    def subscribe(
        self, client: WsClient, topics: Iterable[Topic], options: Subscription = Subscription()
    ) -> set[Topic]:
        """Add ``topics`` to the client's subscriptions with ``options`` (replacing the options of those it
        holds), all or nothing; returns the topics that are new.

        Raises:
            ProtocolError: TOO_MANY_SUBSCRIPTIONS when the client would hold more than the cap.
        """
        topics = set(topics)
        new = topics - client.subscriptions.keys()
        total = len(client.subscriptions) + len(new)
        if total > self._max_subscriptions:
            raise ProtocolError(
                ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                f"{total} subscriptions requested; at most {self._max_subscriptions} (symbol, channel) pairs "
                f"per connection (now {len(client.subscriptions)})",
            )
        for topic in topics:
            self._subscribers.setdefault(topic, set()).add(client)
            client.subscribe(topic, options)
        return new

    def unsubscribe(self, client: WsClient, topics: Iterable[Topic]) -> None:
        """Remove ``topics`` from the client's subscriptions (unknown ones are ignored)."""
        for topic in topics:
            subscribers = self._subscribers.get(topic)
            if subscribers is not None:
                subscribers.discard(client)
                if not subscribers:
                    del self._subscribers[topic]
            client.unsubscribe(topic)

    def publish(self, topic: Topic, message: str, kind: str, ticks: list[bytes] | None = None) -> int:
        """Hand ``message`` to every subscriber of ``topic`` (``ticks``: the trades it carries, for
        throttled subscribers); returns how many accepted it."""
        subscribers = self._subscribers.get(topic)
        if not subscribers:
            return 0
        accepted = sum(client.deliver(topic, message, ticks) for client in tuple(subscribers))
        self._metrics.ws_enqueued.labels(kind).inc(accepted)
        return accepted

    def publish_ticks(self, ticks_by_symbol: dict[str, list[bytes]]) -> None:
        """Push a batch of tick wire records (JSON) as one ``trades`` message per subscribed symbol.

        When the batch carries its oldest broker append time (``TickBatch.append_ms``) the frame is a
        :class:`TimedFrame`: each client's sender observes the fast path (Kafka append -> WebSocket send)."""
        append_ms = getattr(ticks_by_symbol, "append_ms", None)
        for symbol, ticks in ticks_by_symbol.items():
            if (TRADES, symbol) in self._subscribers:
                batch = b"[" + b",".join(ticks) + b"]"
                message = data_frame("trades", symbol, batch)
                if append_ms is not None:
                    message = TimedFrame.of(message, append_ms, symbol)
                self.publish((TRADES, symbol), message, "trades", ticks)

    def broadcast(self, message: str, kind: str) -> None:
        """Queue ``message`` to every connected client."""
        accepted = sum(client.offer(message) for client in tuple(self.clients))
        self._metrics.ws_enqueued.labels(kind).inc(accepted)

    async def heartbeat(self, interval_s: float) -> None:
        """Send ``{"type": "heartbeat", "time": ...}`` to every client every ``interval_s`` (runs forever)."""
        while True:
            await asyncio.sleep(interval_s)
            self.broadcast(frame({"type": "heartbeat", "time": now_iso()}), "heartbeat")
