"""One WebSocket client: a bounded send queue drained by its own sender task, and the slow-consumer policy.

Slow-consumer policy (per client; the fan-out only appends to queues, so a slow client never delays
another one):

1. Pushed messages (trades, bars, indicators, anomalies, heartbeats) wait in a queue of at most
   ``api_ws_queue_size`` messages; the client's sender task writes them to the socket in order and waits
   whenever the socket's buffers are full (TCP flow control). Messages of ``"priority": "high"``
   subscriptions are sent ahead of the others (in order among themselves).
2. When a message arrives while the queue is full, that message is dropped for this client and the client
   is sent a ``{"type": "warning", "code": "SLOW_CONSUMER", "dropped": n}`` message ahead of the queue.
   A high-priority message is not dropped while normal ones are queued: the oldest normal message is
   dropped instead (counted in ``dropped`` too); only a queue full of high-priority messages drops one.
3. ``api_ws_slow_grace_s`` after the warning the queue is checked: still more than half full, the
   connection is closed with code 1008 ("slow consumer"); otherwise the client gets
   ``{"type": "info", "code": "SLOW_CONSUMER_RECOVERED", "dropped": n}`` and a later overflow warns again.
4. Replies (pong, subscribed, errors, warnings) go through a separate queue sent first, and are still
   sent before the close frame; a client that lets ``api_ws_queue_size`` replies pile up unread is closed
   with 1008 as well. Closing gives up after 5 s if the socket stays full (the peer reads nothing).
5. The kernel buffer in front of the queue is bounded too: ``tickflow api`` sets ``SO_SNDBUF`` to
   ``api_socket_send_buffer`` (Linux would otherwise let it grow to 4 MB per connection).
6. Throttled subscriptions (``throttle_ms``) hold at most one pending message each (trades: one pending
   batch of at most ``MAX_BATCHED_TICKS`` ticks, the oldest dropped beyond), outside the queue; it enters
   the queue, under rules 1-2, when its interval has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field

from starlette.websockets import WebSocket, WebSocketDisconnect

from api.metrics import ApiMetrics
from api.ws.protocol import data_frame, frame
from tickflow.latency import Stage

CLOSE_TIMEOUT_S = 5.0
SLOW_CONSUMER_CLOSE = 1008

MAX_BATCHED_TICKS = 10_000
TRADES = "trades"
ANOMALIES = "anomalies"  # events: never conflated

Topic = tuple[str, str]
"""A subscription: (channel, symbol), e.g. ("bars:1m", "BTC-USD")."""


@dataclass(frozen=True)
class Subscription:
    """Options of one subscription: conflation interval (s; 0 = none) and priority."""

    throttle_s: float = 0.0
    high: bool = False


@dataclass
class _Throttle:
    """Conflation state of one throttled subscription."""

    next_at: float  # loop time from which the next message may be queued
    message: str | None = None  # pending bar/indicators frame (the latest)
    ticks: list[bytes] = field(default_factory=list)  # pending trades (tick wire JSON), in order
    timer: asyncio.TimerHandle | None = None


class TimedFrame(str):
    """A pushed ``trades`` frame that carries the fast-path clock: ``append_ms``, the Kafka append time of
    its oldest tick (ms since the epoch, UTC), and its ``symbol``. The sender observes the fast-path stage
    (append -> handed to the socket, ms) once ``send_text`` returned (``tickflow.latency``)."""

    append_ms: int
    symbol: str

    @classmethod
    def of(cls, frame: str, append_ms: int, symbol: str) -> TimedFrame:
        timed = cls(frame)
        timed.append_ms, timed.symbol = append_ms, symbol
        return timed


class WsClient:
    """Queues and sender of one connection; ``offer`` and ``reply`` never block."""

    def __init__(
        self, websocket: WebSocket, queue_size: int, slow_grace_s: float, metrics: ApiMetrics
    ) -> None:
        self.websocket = websocket
        self.subscriptions: dict[Topic, Subscription] = {}
        self.dropped = 0
        self._queue_size = queue_size
        self._grace_s = slow_grace_s
        self._metrics = metrics
        self._data: deque[str] = deque()
        self._urgent: deque[str] = deque()  # messages of high-priority subscriptions
        self._replies: deque[str] = deque()
        self._throttles: dict[Topic, _Throttle] = {}
        self._wake = asyncio.Event()
        self._warned = False
        self._close: tuple[int, str] | None = None
        self._sender: asyncio.Task[None] | None = None

    @property
    def closing(self) -> bool:
        """True once the connection is being closed by the server."""
        return self._close is not None

    @property
    def queued(self) -> int:
        """Pushed messages waiting in the queue."""
        return len(self._data) + len(self._urgent)

    def subscribe(self, topic: Topic, options: Subscription) -> None:
        """Add or re-configure a subscription; a throttled one may send its next message ``throttle_s``
        from now (its snapshot counts as the first). High-priority and anomaly subscriptions are never
        throttled."""
        self.subscriptions[topic] = options
        self._forget_throttle(topic)
        if options.throttle_s and not options.high and topic[0] != ANOMALIES:
            self._throttles[topic] = _Throttle(asyncio.get_running_loop().time() + options.throttle_s)

    def unsubscribe(self, topic: Topic) -> None:
        self.subscriptions.pop(topic, None)
        self._forget_throttle(topic)

    def deliver(self, topic: Topic, message: str, ticks: list[bytes] | None = None) -> bool:
        """Queue a push of ``topic`` under the subscription's options: at once, or conflated (``ticks``:
        the trades of a ``trades`` message, merged into the pending batch). False when dropped."""
        options = self.subscriptions.get(topic)
        if options is None:
            return False
        throttle = self._throttles.get(topic)
        if throttle is None:
            return self.offer(message, options.high)
        loop = asyncio.get_running_loop()
        if throttle.timer is None and loop.time() >= throttle.next_at:
            throttle.next_at = loop.time() + options.throttle_s
            return self.offer(message)
        if ticks is None:
            throttle.message = message
        else:
            throttle.ticks += ticks
            if len(throttle.ticks) > MAX_BATCHED_TICKS:
                excess = len(throttle.ticks) - MAX_BATCHED_TICKS
                del throttle.ticks[:excess]
                self.dropped += excess
                self._metrics.ws_dropped.inc(excess)
        if throttle.timer is None:
            throttle.timer = loop.call_at(throttle.next_at, self._flush, topic)
        return True

    def _flush(self, topic: Topic) -> None:
        throttle = self._throttles.get(topic)
        options = self.subscriptions.get(topic)
        if throttle is None or options is None:
            return
        throttle.timer = None
        throttle.next_at = asyncio.get_running_loop().time() + options.throttle_s
        message, throttle.message = throttle.message, None
        if throttle.ticks:
            message = data_frame(TRADES, topic[1], b"[" + b",".join(throttle.ticks) + b"]")
            throttle.ticks = []
        if message is not None:
            self.offer(message)

    def _forget_throttle(self, topic: Topic) -> None:
        throttle = self._throttles.pop(topic, None)
        if throttle is not None and throttle.timer is not None:
            throttle.timer.cancel()

    def offer(self, message: str, high: bool = False) -> bool:
        """Queue a pushed message (``high``: of a high-priority subscription); False when it was dropped
        (queue full or closing)."""
        if self._close is not None:
            return False
        if len(self._data) + len(self._urgent) >= self._queue_size:
            self.dropped += 1
            self._metrics.ws_dropped.inc()
            if not self._warned:
                self._warn()
            if not (high and self._data):
                return False
            self._data.popleft()  # make room for the high-priority message
        (self._urgent if high else self._data).append(message)
        self._wake.set()
        return True

    def reply(self, message: str, snapshot: bool = False) -> None:
        """Queue a reply ahead of pushed messages (``snapshot``: a subscription's snapshot, which follows
        its ``subscribed`` reply and does not count towards the unread-replies limit)."""
        if self._close is not None:
            return
        if not snapshot and len(self._replies) >= self._queue_size:
            self._metrics.ws_slow.labels("closed").inc()
            self._replies.clear()
            self.close(SLOW_CONSUMER_CLOSE, "slow consumer: replies not read")
            return
        self._replies.append(message)
        self._wake.set()

    def close(self, code: int, reason: str) -> None:
        """Drop the queued pushes, send the queued replies (a warning among them), then close with ``code``
        (done by the sender task)."""
        if self._close is not None:
            return
        self._close = (code, reason)
        self._data.clear()
        self._urgent.clear()
        for topic in list(self._throttles):
            self._forget_throttle(topic)
        if self._sender is not None and self._sender is not asyncio.current_task():
            self._sender.cancel()
        self._wake.set()

    async def run(self) -> None:
        """Send queued messages until the peer goes away or ``close`` is called, then close the socket."""
        self._sender = asyncio.current_task()
        try:
            await self._pump()
        except asyncio.CancelledError:
            if self._close is None:
                raise
            self._sender.uncancel()
        except (WebSocketDisconnect, OSError, RuntimeError):
            return  # the peer is gone
        if self._close is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._goodbye(*self._close), CLOSE_TIMEOUT_S)

    async def _goodbye(self, code: int, reason: str) -> None:
        while self._replies:
            await self.websocket.send_text(self._replies.popleft())
        await self.websocket.close(code, reason)

    async def _pump(self) -> None:
        send = self.websocket.send_text
        latency = self._metrics.latency
        while self._close is None:
            if self._replies:
                message = self._replies.popleft()
            elif self._urgent:
                message = self._urgent.popleft()
            elif self._data:
                message = self._data.popleft()
            else:
                self._wake.clear()
                await self._wake.wait()
                continue
            await send(message)
            if type(message) is TimedFrame:
                latency.observe(Stage.FAST_PATH, message.symbol, time.time() * 1000 - message.append_ms)

    def _warn(self) -> None:
        self._warned = True
        self._metrics.ws_slow.labels("warned").inc()
        self.reply(
            frame(
                {
                    "type": "warning",
                    "code": "SLOW_CONSUMER",
                    "message": f"send queue full ({self._queue_size} messages): messages are being dropped; "
                    f"the connection is closed with 1008 if the queue is still over half full in "
                    f"{self._grace_s:g} s",
                    "dropped": self.dropped,
                }
            )
        )
        asyncio.get_running_loop().call_later(self._grace_s, self._check_slow)

    def _check_slow(self) -> None:
        if self._close is not None:
            return
        if self.queued > self._queue_size // 2:
            self._metrics.ws_slow.labels("closed").inc()
            self.close(SLOW_CONSUMER_CLOSE, "slow consumer: send queue over limit")
            return
        self._warned = False
        self._metrics.ws_slow.labels("recovered").inc()
        self.reply(frame({"type": "info", "code": "SLOW_CONSUMER_RECOVERED", "dropped": self.dropped}))
