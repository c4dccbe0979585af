"""Serving one WebSocket connection: limits, auth, the welcome message, client requests, sender and
receiver."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import psycopg2
from starlette.websockets import WebSocket

from api.auth import API_KEY_QUERY, header_key
from api.metrics import ApiMetrics
from api.symbols import SymbolCatalog
from api.ws.client import CLOSE_TIMEOUT_S, Subscription, Topic, WsClient
from api.ws.hub import Hub
from api.ws.limits import LIMIT_CLOSE, ConnectionLimits, MessageRate
from api.ws.protocol import (
    ErrorCode,
    Ping,
    Priority,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    channel_names,
    error_frame,
    frame,
    now_iso,
    parse_request,
)
from api.ws.snapshot import Snapshots
from tickflow.apikeys import key_is_valid
from tickflow.settings import Settings

AUTH_CLOSE = 1008
AUTH_TIMEOUT_S = 5.0


class Session:
    """Answers the requests of one client."""

    def __init__(
        self,
        client: WsClient,
        hub: Hub,
        catalog: SymbolCatalog,
        channels: tuple[str, ...],
        metrics: ApiMetrics,
        snapshots: Snapshots,
    ) -> None:
        self._client = client
        self._hub = hub
        self._snapshots = snapshots
        self._catalog = catalog
        self._channels = channels
        self._metrics = metrics

    async def handle(self, text: str | bytes) -> None:
        """Serve one client message; every problem becomes an error reply."""
        request_id = None
        try:
            request = parse_request(text)
            request_id = request.id
            if isinstance(request, Ping):
                self._client.reply(frame({"type": "pong", "id": request_id, "time": now_iso()}))
                return
            topics = await self._topics(request)
            if isinstance(request, Subscribe):
                await self._subscribe(request, topics)
                return
            self._hub.unsubscribe(self._client, topics)
            self._client.reply(
                frame({"type": "unsubscribed", "id": request_id, "subscriptions": self._summary()})
            )
        except ProtocolError as error:
            if error.request_id is None:
                error.request_id = request_id
            self._metrics.ws_client_errors.labels(error.code).inc()
            self._client.reply(error_frame(error))

    async def _subscribe(self, request: Subscribe, topics: set[Topic]) -> None:
        """Subscribe, reply, then queue the snapshots of the new subscriptions. Redis fallbacks are read
        first: from the memory read on there is no await, so no live update can overtake a snapshot."""
        fallback = await self._snapshots.fallback(topics - self._client.subscriptions.keys())
        high = request.priority is Priority.HIGH
        options = Subscription(throttle_s=0.0 if high else request.throttle_ms / 1000, high=high)
        new = self._hub.subscribe(self._client, topics, options)
        self._client.reply(frame({"type": "subscribed", "id": request.id, "subscriptions": self._summary()}))
        for snapshot in self._snapshots.frames(new, fallback):
            self._client.reply(snapshot, snapshot=True)

    async def _topics(self, request: Subscribe | Unsubscribe) -> set[Topic]:
        unknown_channels = sorted(set(request.channels) - set(self._channels))
        if unknown_channels:
            raise ProtocolError(
                ErrorCode.UNKNOWN_CHANNEL,
                f"unknown channel(s) {', '.join(unknown_channels)}; expected {', '.join(self._channels)}",
            )
        symbols = [s.strip().upper() for s in request.symbols]
        if isinstance(request, Subscribe):
            try:
                unknown = [s for s in symbols if not await self._catalog.known(s)]
            except psycopg2.Error as exc:
                raise ProtocolError(ErrorCode.UNAVAILABLE, f"symbol look-up failed: {exc}") from exc
            if unknown:
                raise ProtocolError(
                    ErrorCode.UNKNOWN_SYMBOL,
                    f"unknown symbol(s) {', '.join(unknown)}; GET /api/v1/symbols lists the served ones",
                )
        return {(channel, symbol) for channel in request.channels for symbol in symbols}

    def _summary(self) -> dict[str, list[str]]:
        by_symbol: dict[str, list[str]] = {}
        for channel, symbol in sorted(self._client.subscriptions.keys()):
            by_symbol.setdefault(symbol, []).append(channel)
        return dict(sorted(by_symbol.items()))


def handshake_key(websocket: WebSocket) -> str | None:
    """The key of the handshake: ``X-API-Key``, ``Authorization: Bearer`` or (legacy) ``?api_key=``."""
    return header_key(websocket.headers) or websocket.query_params.get(API_KEY_QUERY)


async def authenticate(websocket: WebSocket, settings: Settings) -> bool:
    """True when auth is off, the handshake carries a valid key, or the first message (within
    ``AUTH_TIMEOUT_S``) is ``{"type": "auth", "api_key": "<key>"}`` with a valid key (answered with
    ``{"type": "authenticated"}``). A key is never logged."""
    if not settings.api_auth:
        return True
    key = handshake_key(websocket)
    if key is not None:
        return key_is_valid(key, settings.api_keys)
    try:
        message = await asyncio.wait_for(websocket.receive(), AUTH_TIMEOUT_S)
    except TimeoutError:
        return False
    text = message.get("text") or message.get("bytes")
    try:
        payload = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        return False
    if not isinstance(payload, dict) or payload.get("type") != "auth":
        return False
    key = payload.get("api_key")
    if not isinstance(key, str) or not key_is_valid(key, settings.api_keys):
        return False
    await websocket.send_text(frame({"type": "authenticated"}))
    return True


async def serve(
    websocket: WebSocket,
    settings: Settings,
    hub: Hub,
    catalog: SymbolCatalog,
    metrics: ApiMetrics,
    snapshots: Snapshots,
    limits: ConnectionLimits,
) -> None:
    """Run one connection until either side closes it; one past the connection limits is closed with
    1008 and a reason after ``api_ws_refuse_delay_s``, one without a valid key (``authenticate``) with
    1008 at once."""
    await websocket.accept()
    address = websocket.client.host if websocket.client else "unknown"
    refused = limits.admit(address)
    if refused is not None:
        metrics.ws_refused.labels("connections").inc()
        await asyncio.sleep(settings.api_ws_refuse_delay_s)  # a tarpit: costs nothing, slows the opener
        with contextlib.suppress(Exception):  # the peer may be gone already
            await websocket.close(LIMIT_CLOSE, refused)
        return
    try:
        if not await authenticate(websocket, settings):
            metrics.ws_refused.labels("auth").inc()
            with contextlib.suppress(Exception):
                await websocket.close(AUTH_CLOSE, "missing or invalid API key")
            return
        await _run(websocket, settings, hub, catalog, metrics, snapshots)
    finally:
        limits.release(address)


async def _run(
    websocket: WebSocket,
    settings: Settings,
    hub: Hub,
    catalog: SymbolCatalog,
    metrics: ApiMetrics,
    snapshots: Snapshots,
) -> None:
    client = WsClient(websocket, settings.api_ws_queue_size, settings.api_ws_slow_grace_s, metrics)
    channels = channel_names(settings.intervals)
    session = Session(client, hub, catalog, channels, metrics, snapshots)
    hub.connect(client)
    client.reply(
        frame(
            {
                "type": "welcome",
                "channels": channels,
                "max_subscriptions": settings.api_ws_max_subscriptions,
                "heartbeat_s": settings.api_ws_heartbeat_s,
                "queue_size": settings.api_ws_queue_size,
                "max_messages_per_s": settings.api_ws_max_messages_per_s,
            }
        )
    )
    sender = asyncio.create_task(client.run())
    rate = MessageRate(settings.api_ws_max_messages_per_s)
    receiver = asyncio.create_task(
        _receive(websocket, session, client, rate, metrics, settings.api_ws_refuse_delay_s)
    )
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        if client.closing and not sender.done():  # let the sender say goodbye (close frame with a reason)
            await asyncio.wait({sender}, timeout=CLOSE_TIMEOUT_S + 1)
    finally:
        hub.disconnect(client)
        for task in (sender, receiver):
            task.cancel()
        await asyncio.gather(sender, receiver, return_exceptions=True)


async def _receive(
    websocket: WebSocket,
    session: Session,
    client: WsClient,
    rate: MessageRate,
    metrics: ApiMetrics,
    refuse_delay_s: float,
) -> None:
    """Serve client messages in order; a client over its message rate is no longer read and is closed with
    1008 after ``refuse_delay_s`` (a flooder that reconnects at once is slowed down)."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if not rate.allow():
            metrics.ws_refused.labels("rate").inc()
            await asyncio.sleep(refuse_delay_s)
            client.close(LIMIT_CLOSE, "too many messages: rate limit exceeded")
            return
        text = message.get("text")
        await session.handle(text if text is not None else message.get("bytes") or b"")
