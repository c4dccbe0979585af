"""A resilient websocket client shared by every live streamer (the ``websockets`` library).

- reconnects forever with exponential back-off and full jitter (a random delay in
  ``[0, min(max_delay, base * 2**attempt)]``), reset once a connection delivered a message;
- a watchdog reconnects when nothing arrived for ``idle_timeout_s`` (silent half-open connections);
- re-sends the subscribe messages after every (re)connect, ``subscribe_interval_s`` apart (exchanges
  rate-limit incoming messages);
- protocol-level ping/pong: ``websockets`` pings every ``ping_interval_s`` and drops the connection when the
  pong is late; pings from the server are answered automatically.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from producers import metrics
from producers.pipeline import now_us

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES: Final = 4 * 1024 * 1024
OPEN_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True)
class ReconnectPolicy:
    """Timings of the client (seconds)."""

    idle_timeout_s: float = 30.0
    max_delay_s: float = 30.0
    base_delay_s: float = 0.5
    subscribe_interval_s: float = 0.25
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0

    def delay(self, attempt: int) -> float:
        """Back-off before reconnect number ``attempt`` (0-based): full jitter."""
        return random.uniform(0.0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


class WebSocketClient:
    """Streams messages of one websocket URL to ``on_message(raw, receipt_time_us)`` until stopped.

    ``on_message`` runs on the event loop and must not block for long. ``subscribe`` is called on every
    (re)connect and returns the text messages to send.
    """

    def __init__(
        self,
        url: str,
        subscribe: Callable[[], Sequence[str]],
        on_message: Callable[[str | bytes, int], None],
        policy: ReconnectPolicy,
        name: str,
    ) -> None:
        self.url = url
        self.connections = 0
        self.connected = False
        self.changed_at = time.monotonic()  # when ``connected`` last changed (monotonic s)
        self._subscribe = subscribe
        self._on_message = on_message
        self._policy = policy
        self._name = name

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, subscribe and dispatch messages, reconnecting as needed, until ``stop`` is set.

        Raises:
            websockets.exceptions.InvalidURI: the URL is not a websocket URL.
        """
        attempt = 0
        while not stop.is_set():
            cause = await self._session(stop)
            if stop.is_set():
                break
            if cause == "healthy":
                attempt = 0
                cause = "closed"
            metrics.RECONNECTS.labels(self._name, cause).inc()
            delay = self._policy.delay(attempt)
            attempt += 1
            log.warning("websocket reconnecting", exchange=self._name, cause=cause, delay_s=round(delay, 2))
            await _wait(stop, delay)

    async def _session(self, stop: asyncio.Event) -> str:
        """One connection; returns why it ended: ``healthy`` (closed after delivering messages),
        ``closed``, ``idle`` (watchdog) or ``connect_failed``."""
        policy = self._policy
        try:
            async with connect(
                self.url,
                open_timeout=OPEN_TIMEOUT_S,
                ping_interval=policy.ping_interval_s,
                ping_timeout=policy.ping_timeout_s,
                max_size=MAX_MESSAGE_BYTES,
                close_timeout=2.0,
            ) as ws:
                self.connections += 1
                self._set_connected(True)
                log.info(
                    "websocket connected", exchange=self._name, url=self.url, connection=self.connections
                )
                try:
                    return await self._stream(ws, stop)
                finally:
                    self._set_connected(False)
        except InvalidURI:
            raise
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            log.warning("websocket connect failed", exchange=self._name, url=self.url, error=str(exc))
            return "connect_failed"

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        self.changed_at = time.monotonic()

    async def _stream(self, ws: ClientConnection, stop: asyncio.Event) -> str:
        received = 0
        try:
            for n, message in enumerate(self._subscribe()):
                if n:
                    await asyncio.sleep(self._policy.subscribe_interval_s)
                await ws.send(message)
            stopping = asyncio.ensure_future(stop.wait())
            try:
                while True:
                    receiving = asyncio.ensure_future(ws.recv())
                    done, _ = await asyncio.wait(
                        {receiving, stopping},
                        timeout=self._policy.idle_timeout_s,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if receiving not in done:
                        receiving.cancel()
                        return "stopped" if stopping in done else "idle"
                    raw = receiving.result()
                    received += 1
                    self._on_message(raw, now_us())
            finally:
                stopping.cancel()
        except ConnectionClosed:
            return "healthy" if received else "closed"


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
