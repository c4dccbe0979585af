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
    collect,
    epoch_to_us,
    field,
    guarded,
    load_json,
    symbol_field,
    to_price,
    to_size,
    to_trade_id,
)
from producers.exchanges.spec import ExchangeSpec
from producers.trades import DlqReason, ParseResult, TradeFields
from tickflow.settings import Settings, reveal

EXCHANGE: Final = "polygon"
FAILED_STATUSES: Final = frozenset({"auth_failed", "error"})
IGNORED_EVENTS: Final = frozenset({"Q", "A", "AM", "LULD", "NOI"})


def trade_from_fields(event: Any) -> TradeFields:
    """One ``T`` event as ``TradeFields``.

    Raises:
        ParseError: a field is missing or has the wrong type, or the event is a failed status.
    """
    item = as_object(event, "event")
    raw_symbol = symbol_field(item, "sym")
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


def _event(event: Any) -> TradeFields | str:
    """A ``T`` event as ``TradeFields``, or the type of a known event to skip.

    Raises:
        ParseError: a failed status, an unknown event type, or a bad ``T`` event.
    """
    kind = event.get("ev") if isinstance(event, dict) else None
    if kind == "T":
        return trade_from_fields(event)
    if kind == "status" and event.get("status") not in FAILED_STATUSES:
        return "status"
    if isinstance(kind, str) and kind in IGNORED_EVENTS:
        return kind
    if kind == "status":
        raise ParseError(DlqReason.EXCHANGE_ERROR, f"{event.get('status')}: {event.get('message')}")
    raise ParseError(DlqReason.UNKNOWN_MESSAGE, f"event type {kind!r} is not known")


@guarded(EXCHANGE)
def parse_message(raw: str | bytes) -> ParseResult:
    """One websocket message (an array of events) -> ``ParseResult``; each event is parsed on its own,
    so one bad event is dead-lettered without losing its neighbours. Never raises."""
    events = load_json(raw)
    if not isinstance(events, list):
        events = [as_object(events)]
    if not events:
        raise ParseError(DlqReason.UNKNOWN_MESSAGE, "an empty array of events")
    return collect(EXCHANGE, events, _event)


def subscribe(symbols: Sequence[str], settings: Settings) -> list[str]:
    """``auth`` with the API key, then one ``subscribe`` to ``T.<symbol>`` for all symbols.

    Raises:
        ValueError: ``polygon_api_key`` is empty.
    """
    key = reveal(settings.polygon_api_key)
    if not key:
        raise ValueError("Polygon needs an API key: set TICKFLOW_POLYGON_API_KEY")
    return [
        orjson.dumps({"action": "auth", "params": key}).decode(),
        orjson.dumps({"action": "subscribe", "params": ",".join(f"T.{s}" for s in symbols)}).decode(),
    ]


SPEC: Final = ExchangeSpec(
    name=EXCHANGE,
    ws_url="wss://socket.polygon.io/stocks",
    parse=parse_message,
    subscribe=subscribe,
    hosts=("socket.polygon.io", "delayed.polygon.io"),
)
