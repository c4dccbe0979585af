"""Polygon.io stocks websocket: trade events ``T.*`` (API key from ``Settings.polygon_api_key``).

Messages are JSON arrays of events (https://polygon.io/docs/stocks/ws_stocks_t)::

    [{"ev": "T", "sym": "MSFT", "x": 4, "i": "12345", "z": 3, "p": 114.125, "s": 100, "c": [0, 12],
      "t": 1536036818784, "q": 3681328}]

``p`` is the price in USD, ``s`` the size in shares, ``t`` the SIP time (ms; ns on some feeds: the unit is
inferred), ``x`` the venue and ``i`` the trade id, unique per venue and symbol, so the trade id stored is
``"{x}:{i}"``. The taker side is not published (``unknown``). Status events (``connected``,
``auth_success``...) are skipped; ``auth_failed`` and errors are dead-lettered as exchange errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson

from producers.exchanges.common import (
    ParseError,
    as_object,
    epoch_to_us,
    field,
    guarded,
    load_json,
    to_price,
    to_size,
    to_trade_id,
)
from producers.exchanges.spec import ExchangeSpec
from producers.trades import DlqReason, ParseResult, Rejection, TradeFields
from tickflow.settings import Settings

EXCHANGE: Final = "polygon"
FAILED_STATUSES: Final = frozenset({"auth_failed", "error"})
IGNORED_EVENTS: Final = frozenset({"Q", "A", "AM", "LULD", "NOI"})


def trade_from_fields(event: Any) -> TradeFields:
    """One ``T`` event as ``TradeFields``.

    Raises:
        ParseError: a field is missing or has the wrong type, or the event is a failed status.
    """
    item = as_object(event, "event")
    raw_symbol = field(item, "sym")
    if not isinstance(raw_symbol, str):
        raise ParseError(DlqReason.UNKNOWN_SYMBOL, f"sym {raw_symbol!r} is not a string")
    venue = to_trade_id(field(item, "x"), "x")
    return {
        "exchange": EXCHANGE,
        "symbol": raw_symbol.upper(),
        "raw_symbol": raw_symbol,
        "price": to_price(field(item, "p"), "p"),
        "size": to_size(field(item, "s"), "s"),
        "side": "unknown",
        "trade_id": f"{venue}:{to_trade_id(field(item, 'i'), 'i')}",
        "event_time": epoch_to_us(field(item, "t"), "t"),
    }


@guarded(EXCHANGE)
def parse_message(raw: str | bytes) -> ParseResult:
    """One websocket message (an array of events) -> ``ParseResult``; each event is parsed on its own,
    so one bad event is dead-lettered without losing its neighbours. Never raises."""
    events = load_json(raw)
    if not isinstance(events, list):
        events = [as_object(events)]
    if not events:
        raise ParseError(DlqReason.UNKNOWN_MESSAGE, "an empty array of events")
    trades: list[TradeFields] = []
    rejects: list[Rejection] = []
    ignored: str | None = None
    for event in events:
        kind = event.get("ev") if isinstance(event, dict) else None
        try:
            if kind == "T":
                trades.append(trade_from_fields(event))
                continue
            if kind == "status" and event.get("status") not in FAILED_STATUSES:
                ignored = "status"
                continue
            if isinstance(kind, str) and kind in IGNORED_EVENTS:
                ignored = kind
                continue
            if kind == "status":
                raise ParseError(DlqReason.EXCHANGE_ERROR, f"{event.get('status')}: {event.get('message')}")
            raise ParseError(DlqReason.UNKNOWN_MESSAGE, f"event type {kind!r} is not known")
        except ParseError as exc:
            rejects.append(Rejection(exc.reason, exc.detail, orjson.dumps(event).decode(), EXCHANGE))
        except Exception as exc:  # hostile event shapes: dead-letter the event, keep its neighbours
            detail = f"{type(exc).__name__}: {exc}"
            rejects.append(Rejection(DlqReason.MALFORMED, detail, orjson.dumps(event).decode(), EXCHANGE))
    return ParseResult(trades, rejects, ignored)


def subscribe(symbols: Sequence[str], settings: Settings) -> list[str]:
    """``auth`` with the API key, then one ``subscribe`` to ``T.<symbol>`` for all symbols.

    Raises:
        ValueError: ``polygon_api_key`` is empty.
    """
    if not settings.polygon_api_key:
        raise ValueError("Polygon needs an API key: set TICKFLOW_POLYGON_API_KEY")
    return [
        orjson.dumps({"action": "auth", "params": settings.polygon_api_key}).decode(),
        orjson.dumps({"action": "subscribe", "params": ",".join(f"T.{s}" for s in symbols)}).decode(),
    ]


SPEC: Final = ExchangeSpec(
    name=EXCHANGE,
    ws_url="wss://socket.polygon.io/stocks",
    parse=parse_message,
    subscribe=subscribe,
    hosts=("socket.polygon.io", "delayed.polygon.io"),
)
