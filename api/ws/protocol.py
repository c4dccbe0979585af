"""The WebSocket protocol of ``/ws``: client requests, server frames, channel names.

Auth (when ``api_auth`` is on): the handshake carries the key in ``X-API-Key`` or ``Authorization: Bearer``
(or, discouraged, ``?api_key=``, redacted from the logs); otherwise the first message must be
``{"type": "auth", "api_key": "<key>"}``, answered with ``{"type": "authenticated"}`` before the welcome.
No valid key: the connection is closed with 1008.

Limits (``api.ws.limits``): connections per process and per client address, and client messages per second
per connection (``max_messages_per_s`` in the welcome; bursts of twice that); past one, 1008 with a reason.

Client -> server (JSON text frames; ``id`` is optional and echoed in the reply)::

    {"type": "subscribe", "symbols": ["BTC-USD"], "channels": ["trades", "bars:1m"], "id": 1,
     "throttle_ms": 100, "priority": "normal"}
    {"type": "unsubscribe", "symbols": ["BTC-USD"], "channels": ["trades"]}
    {"type": "ping", "id": "x"}

Server -> client::

    {"type": "welcome", "channels": [...], "max_subscriptions": 100, "heartbeat_s": 30.0, "queue_size": 1000,
     "max_messages_per_s": 50.0}
    {"type": "subscribed" | "unsubscribed", "id": 1, "subscriptions": {"BTC-USD": ["bars:1m", "trades"]}}
    {"type": "pong", "id": "x", "time": "<ISO UTC>"}
    {"type": "heartbeat", "time": "<ISO UTC>"}
    {"type": "price", "symbol": "BTC-USD", "snapshot": true, "data": <LatestPrice JSON, as GET /latest>}
    {"type": "trades", "symbol": "BTC-USD", "data": [<tick wire JSON, see tickflow.schemas>, ...]}
    {"type": "bar", "symbol": "BTC-USD", "interval": "1m", "data": <OHLCVBar JSON; revisions that changed>}
    {"type": "indicators", "symbol": "BTC-USD", "interval": "1m", "data": <indicator row JSON>}
    {"type": "anomaly", "symbol": "BTC-USD", "data": <anomaly JSON>}
    {"type": "error", "code": "BAD_JSON", "message": "...", "id": 1}
    {"type": "warning", "code": "SLOW_CONSUMER", "message": "...", "dropped": 17}
    {"type": "info", "code": "SLOW_CONSUMER_RECOVERED", "dropped": 17}

Channels: ``trades``, ``bars:{interval}``, ``indicators:{interval}`` (intervals of ``Settings.intervals``)
and ``anomalies``. A subscription is one (symbol, channel) pair; a subscribe request adds the product of its
symbols and channels, all or nothing.

Snapshot first: right after the ``subscribed`` reply, each new subscription gets the current state, marked
``"snapshot": true``, before any live update: ``trades`` the latest price (a ``price`` frame), ``bars:{i}``
the newest revision of the current bar, ``indicators:{i}`` the latest indicator row. They come from the
process's memory (``api.latest``), else Redis; a channel with no known state (and ``anomalies``, which are
events) gets none.

Only changes are pushed: a bar or indicator revision identical to the last one of its window (apart from
``updated_at``) is not sent again, e.g. when a batch job re-runs.

Options of a subscribe request (they apply to each of its pairs; subscribing a pair again replaces them):

- ``throttle_ms`` (0..60000, default 0 = every update): conflation. At most one message per
  ``throttle_ms`` per subscription; a message held back is replaced by a newer one (``bar``,
  ``indicators``: the latest state wins) or merged with it (``trades``: one batch of every trade since the
  last message, in order). The snapshot counts as the first message. Anomalies are events and never held.
- ``priority`` (``"normal"`` or ``"high"``): ``high`` subscriptions are never throttled (``throttle_ms`` is
  ignored), are sent ahead of normal ones and are the last dropped for a slow consumer (``api.ws.client``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

MAX_LIST = 100
MAX_THROTTLE_MS = 60_000


class ErrorCode(StrEnum):
    """``code`` of an error reply."""

    BAD_JSON = "BAD_JSON"
    BAD_MESSAGE = "BAD_MESSAGE"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    UNKNOWN_CHANNEL = "UNKNOWN_CHANNEL"
    TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
    UNAVAILABLE = "UNAVAILABLE"


Name = Annotated[str, Field(min_length=1, max_length=32)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | int | None = None


class _Selection(_Request):
    symbols: list[Name] = Field(min_length=1, max_length=MAX_LIST)
    channels: list[Name] = Field(min_length=1, max_length=MAX_LIST)


class Priority(StrEnum):
    """``priority`` of a subscription."""

    NORMAL = "normal"
    HIGH = "high"


class Subscribe(_Selection):
    type: Literal["subscribe"]
    throttle_ms: int = Field(0, ge=0, le=MAX_THROTTLE_MS, description="Most one message per this many ms.")
    priority: Priority = Priority.NORMAL


class Unsubscribe(_Selection):
    type: Literal["unsubscribe"]


class Ping(_Request):
    type: Literal["ping"]


ClientRequest = Annotated[Subscribe | Unsubscribe | Ping, Field(discriminator="type")]
_REQUEST = TypeAdapter(ClientRequest)
REQUEST_TYPES = ("subscribe", "unsubscribe", "ping")


class ProtocolError(Exception):
    """A client message that cannot be served; becomes an error reply (the connection stays open)."""

    def __init__(self, code: ErrorCode, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def parse_request(text: str | bytes) -> Subscribe | Unsubscribe | Ping:
    """The client request in a text frame.

    Raises:
        ProtocolError: BAD_JSON (not JSON), UNKNOWN_TYPE (no or unknown ``type``) or BAD_MESSAGE (fields).
    """
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"message is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "message must be a JSON object")
    request_id = payload.get("id") if isinstance(payload.get("id"), str | int) else None
    if payload.get("type") not in REQUEST_TYPES:
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown message type {payload.get('type')!r}; expected one of {', '.join(REQUEST_TYPES)}",
            request_id,
        )
    try:
        return _REQUEST.validate_python(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'message'}: {e['msg']}" for e in exc.errors()
        )
        raise ProtocolError(ErrorCode.BAD_MESSAGE, problems, request_id) from exc


def channel_names(intervals: Iterable[str]) -> tuple[str, ...]:
    """Every channel a client may subscribe to."""
    intervals = list(intervals)
    return ("trades", *(f"bars:{i}" for i in intervals), *(f"indicators:{i}" for i in intervals), "anomalies")


def now_iso() -> str:
    """The current UTC time, ISO-8601 with microseconds."""
    return datetime.now(UTC).isoformat()


def frame(payload: dict[str, Any]) -> str:
    """A server frame as JSON text."""
    return orjson.dumps(payload).decode()


def error_frame(error: ProtocolError) -> str:
    return frame({"type": "error", "code": error.code, "message": error.message, "id": error.request_id})


def data_frame(
    kind: str, symbol: str, data: bytes, interval: str | None = None, snapshot: bool = False
) -> str:
    """A push frame around ``data``, already-serialised JSON (spliced in, not re-encoded)."""
    head: dict[str, Any] = {"type": kind, "symbol": symbol}
    if interval is not None:
        head["interval"] = interval
    if snapshot:
        head["snapshot"] = True
    return f'{orjson.dumps(head)[:-1].decode()},"data":{data.decode()}}}'
