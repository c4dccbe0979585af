"""One WebSocket client: a bounded send queue drained by its own sender task, and the slow-consumer policy.

Slow-consumer policy (per client; the fan-out only appends to queues, so a slow client never delays
another one):

1. Pushed messages (trades, bars, indicators, anomalies, heartbeats) wait in a queue of at most
   ``api_ws_queue_size`` messages; the client's sender task writes them to the socket in order and waits
   whenever the socket's buffers are full (TCP flow control).
2. When a message arrives while the queue is full, that message is dropped for this client and the client
   is sent a ``{"type": "warning", "code": "SLOW_CONSUMER", "dropped": n}`` message ahead of the queue.
3. ``api_ws_slow_grace_s`` after the warning the queue is checked: still more than half full, the
   connection is closed with code 1008 ("slow consumer"); otherwise the client gets
   ``{"type": "info", "code": "SLOW_CONSUMER_RECOVERED", "dropped": n}`` and a later overflow warns again.
4. Replies (pong, subscribed, errors, warnings) go through a separate queue sent first, and are still
   sent before the close frame; a client that lets ``api_ws_queue_size`` replies pile up unread is closed
   with 1008 as well. Closing gives up after 5 s if the socket stays full (the peer reads nothing).
5. The kernel buffer in front of the queue is bounded too: ``tickflow api`` sets ``SO_SNDBUF`` to
   ``api_socket_send_buffer`` (Linux would otherwise let it grow to 4 MB per connection).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from starlette.websockets import WebSocket, WebSocketDisconnect

from api.metrics import ApiMetrics
from api.ws.protocol import frame

CLOSE_TIMEOUT_S = 5.0
SLOW_CONSUMER_CLOSE = 1008

Topic = tuple[str, str]
"""A subscription: (channel, symbol), e.g. ("bars:1m", "BTC-USD")."""


class WsClient:
    """Queues and sender of one connection; ``offer`` and ``reply`` never block."""

    def __init__(
        self, websocket: WebSocket, queue_size: int, slow_grace_s: float, metrics: ApiMetrics
    ) -> None:
        self.websocket = websocket
        self.subscriptions: set[Topic] = set()
        self.dropped = 0
        self._queue_size = queue_size
        self._grace_s = slow_grace_s
        self._metrics = metrics
        self._data: deque[str] = deque()
        self._replies: deque[str] = deque()
        self._wake = asyncio.Event()
        self._warned = False
        self._close: tuple[int, str] | None = None
        self._sender: asyncio.Task[None] | None = None

    @property
    def closing(self) -> bool:
        """True once the connection is being closed by the server."""
        return self._close is not None

    def offer(self, message: str) -> bool:
        """Queue a pushed message; False when it was dropped (queue full or closing)."""
        if self._close is not None:
            return False
        if len(self._data) >= self._queue_size:
            self.dropped += 1
            self._metrics.ws_dropped.inc()
            if not self._warned:
                self._warn()
            return False
        self._data.append(message)
        self._wake.set()
        return True

    def reply(self, message: str) -> None:
        """Queue a reply ahead of pushed messages."""
        if self._close is not None:
            return
        if len(self._replies) >= self._queue_size:
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
        while self._close is None:
            if self._replies:
                await send(self._replies.popleft())
            elif self._data:
                await send(self._data.popleft())
            else:
                self._wake.clear()
                await self._wake.wait()

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
        if len(self._data) > self._queue_size // 2:
            self._metrics.ws_slow.labels("closed").inc()
            self.close(SLOW_CONSUMER_CLOSE, "slow consumer: send queue over limit")
            return
        self._warned = False
        self._metrics.ws_slow.labels("recovered").inc()
        self.reply(frame({"type": "info", "code": "SLOW_CONSUMER_RECOVERED", "dropped": self.dropped}))
