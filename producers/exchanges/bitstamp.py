"""Bitstamp websocket API v2: the ``live_trades_{pair}`` channels.

Messages (https://www.bitstamp.net/websocket/v2/)::

    {"data": {"id": 216000477, "timestamp": "1641343699", "amount": 0.0792, "amount_str": "0.07920000",
     "price": 3805.44, "price_str": "3805.44", "type": 0, "microtimestamp": "1641343699596000", ...},
     "channel": "live_trades_ethusd", "event": "trade"}

``type`` is the taker side (0 buy, 1 sell). The exact decimal strings ``price_str``/``amount_str`` and
``microtimestamp`` (µs) are preferred over ``price``/``amount``/``timestamp`` (s). Trade ids are unique
but not consecutive per pair, so gaps cannot be detected. Pairs are concatenated (``ethusd`` -> ``ETH-USD``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from producers.exchanges.common import (
    ParseError,
    as_object,
    epoch_to_us,
    field,
    guarded,
    load_json,
    side_field,
    split_pair,
    to_price,
    to_size,
    to_trade_id,
)
from producers.exchanges.spec import ExchangeSpec
from producers.trades import DlqReason, ParseResult, TradeFields
from tickflow.settings import Settings

EXCHANGE: Final = "bitstamp"
TRADE_CHANNEL_PREFIX: Final = "live_trades_"
TAKER_SIDE: Final[Mapping[int, str]] = {0: "buy", 1: "sell"}
IGNORED_EVENTS: Final = frozenset(
    {"data", "bts:subscription_succeeded", "bts:unsubscription_succeeded", "bts:heartbeat",
     "bts:request_reconnect", "order_created", "order_changed", "order_deleted"}
)  # fmt: skip


def _preferred(data: Mapping[str, Any], exact: str, rounded: str) -> Any:
    value = data.get(exact)
    return value if value not in (None, "") else field(data, rounded)


def trade_from_fields(data: Mapping[str, Any], raw_symbol: str) -> TradeFields:
    """The ``data`` of a ``trade`` event as ``TradeFields``.

    Raises:
        ParseError: a field is missing or has the wrong type.
    """
    side = side_field(data, "type", TAKER_SIDE, "0 (buy) or 1 (sell)", raw_symbol)
    return {
        "exchange": EXCHANGE,
        "symbol": split_pair(raw_symbol),
        "raw_symbol": raw_symbol,
        "price": to_price(_preferred(data, "price_str", "price")),
        "size": to_size(_preferred(data, "amount_str", "amount"), "amount"),
        "side": side,
        "trade_id": to_trade_id(field(data, "id"), "id"),
        "event_time": epoch_to_us(_preferred(data, "microtimestamp", "timestamp")),
    }


@guarded(EXCHANGE)
def parse_message(raw: str | bytes) -> ParseResult:
    """One websocket message -> ``ParseResult``. Never raises."""
    message = as_object(load_json(raw))
    event = message.get("event")
    channel = message.get("channel")
    if event == "trade":
        if not isinstance(channel, str) or not channel.startswith(TRADE_CHANNEL_PREFIX):
            raise ParseError(DlqReason.UNKNOWN_SYMBOL, f"channel {channel!r} is not live_trades_<pair>")
        raw_symbol = channel.removeprefix(TRADE_CHANNEL_PREFIX)
        return ParseResult([trade_from_fields(as_object(field(message, "data"), "data"), raw_symbol)], [])
    if event == "bts:error":
        raise ParseError(DlqReason.EXCHANGE_ERROR, orjson.dumps(message.get("data")).decode()[:500])
    if isinstance(event, str) and event in IGNORED_EVENTS:
        return ParseResult([], [], ignored=event)
    raise ParseError(DlqReason.UNKNOWN_MESSAGE, f"event {event!r} is not known")


def subscribe(symbols: Sequence[str], settings: Settings) -> list[str]:
    """One ``bts:subscribe`` per pair (``BTC-USD`` -> ``live_trades_btcusd``); the client paces them."""
    return [
        orjson.dumps(
            {"event": "bts:subscribe", "data": {"channel": TRADE_CHANNEL_PREFIX + s.replace("-", "").lower()}}
        ).decode()
        for s in symbols
    ]


SPEC: Final = ExchangeSpec(
    name=EXCHANGE,
    ws_url="wss://ws.bitstamp.net",
    parse=parse_message,
    subscribe=subscribe,
    hosts=("ws.bitstamp.net",),
)
