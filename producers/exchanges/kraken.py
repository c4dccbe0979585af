"""Kraken spot websocket API v2: the ``trade`` channel.

Messages (https://docs.kraken.com/api/docs/websocket-v2/trade)::

    {"channel": "trade", "type": "update", "data": [{"symbol": "MATIC/USD", "side": "buy",
     "price": 0.5147, "qty": 6423.46326, "ord_type": "limit", "trade_id": 4665846,
     "timestamp": "2023-09-25T07:48:36.925533Z"}]}

``side`` is the taker side. ``type: snapshot`` (the last trades, sent on subscribing) has the same shape:
after a reconnect it re-sends trades the client may have missed, and de-duplication drops the rest.
Trade ids count up by one per pair. Symbols are ``BASE/QUOTE`` (``XBT`` is mapped to ``BTC``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from producers.exchanges.common import (
    ParseError,
    as_object,
    collect,
    field,
    guarded,
    iso_to_us,
    load_json,
    separated_pair,
    side_field,
    symbol_field,
    to_price,
    to_size,
    to_trade_id,
)
from producers.exchanges.spec import ExchangeSpec
from producers.trades import DlqReason, ParseResult, TradeFields
from tickflow.settings import Settings

EXCHANGE: Final = "kraken"
IGNORED_CHANNELS: Final = frozenset({"heartbeat", "status", "book", "ticker", "ohlc", "instrument"})
SIDES: Final[Mapping[str, str]] = {"buy": "buy", "sell": "sell"}  # Kraken reports the taker side


def trade_from_fields(data: Any) -> TradeFields:
    """One element of a ``trade`` message's ``data`` as ``TradeFields``.

    Raises:
        ParseError: a field is missing or has the wrong type.
    """
    item = as_object(data, "trade")
    raw_symbol = symbol_field(item, "symbol")
    side = side_field(item, "side", SIDES, "buy/sell", raw_symbol)
    return {
        "exchange": EXCHANGE,
        "symbol": separated_pair(raw_symbol),
        "raw_symbol": raw_symbol,
        "price": to_price(field(item, "price")),
        "size": to_size(field(item, "qty"), "qty"),
        "side": side,
        "trade_id": to_trade_id(field(item, "trade_id")),
        "event_time": iso_to_us(field(item, "timestamp"), "timestamp"),
    }


def _method_reply(message: Mapping[str, Any]) -> ParseResult:
    if message.get("success") is False:
        raise ParseError(DlqReason.EXCHANGE_ERROR, f"{message.get('method')}: {message.get('error')}")
    return ParseResult([], [], ignored=f"{message['method']}_reply")


@guarded(EXCHANGE)
def parse_message(raw: str | bytes) -> ParseResult:
    """One websocket v2 message -> ``ParseResult``; each element of ``data`` is parsed on its own, so one
    bad trade is dead-lettered without losing its neighbours. Never raises."""
    message = as_object(load_json(raw))
    channel = message.get("channel")
    if channel == "trade":
        items = field(message, "data")
        if not isinstance(items, list):
            raise ParseError(DlqReason.MALFORMED, f"data is a {type(items).__name__}, expected a list")
        return collect(EXCHANGE, items, trade_from_fields)
    if isinstance(channel, str) and channel in IGNORED_CHANNELS:
        return ParseResult([], [], ignored=channel)
    if isinstance(message.get("method"), str):
        return _method_reply(message)
    raise ParseError(DlqReason.UNKNOWN_MESSAGE, f"channel {channel!r} is not known")


def subscribe(symbols: Sequence[str], settings: Settings) -> list[str]:
    """One ``subscribe`` request for the ``trade`` channel with a snapshot (``BTC-USD`` -> ``BTC/USD``)."""
    pairs = [s.replace("-", "/") for s in symbols]
    params = {"channel": "trade", "symbol": pairs, "snapshot": True}
    return [orjson.dumps({"method": "subscribe", "params": params}).decode()]


SPEC: Final = ExchangeSpec(
    name=EXCHANGE,
    ws_url="wss://ws.kraken.com/v2",
    parse=parse_message,
    subscribe=subscribe,
    hosts=("ws.kraken.com",),
    sequential_ids=True,
)
