"""Kraken spot websocket: the ``trade`` channel of API v2 (what Tickflow subscribes to) and of API v1
(``wss://ws.kraken.com``, still served, and what the recorded capture holds); one parser reads both.

v2 messages (https://docs.kraken.com/api/docs/websocket-v2/trade)::

    {"channel": "trade", "type": "update", "data": [{"symbol": "MATIC/USD", "side": "buy",
     "price": 0.5147, "qty": 6423.46326, "ord_type": "limit", "trade_id": 4665846,
     "timestamp": "2023-09-25T07:48:36.925533Z"}]}

``side`` is the taker side. ``type: snapshot`` (the last trades, sent on subscribing) has the same shape:
after a reconnect it re-sends trades the client may have missed, and de-duplication drops the rest.
Trade ids count up by one per pair. Symbols are ``BASE/QUOTE`` (``XBT`` is mapped to ``BTC``).

v1 messages (https://docs.kraken.com/api/docs/websocket-v1/trade) are arrays; events are objects::

    [993, [["354.04000000", "0.28245396", "1618678150.826417", "s", "m", ""], ...], "trade", "XMR/USD"]
    {"event": "heartbeat"}

Each trade is ``[price, volume, time (s, decimal string), side b/s (taker), order type l/m, misc]``, with
no trade id; the id Tickflow gives it is ``<time>:<price>:<volume>`` as sent (``#2``... appended to an
exact repeat within one message), stable across replays so re-sent trades are de-duplicated, and not an
integer, so v1 streams have no gap detection.
"""

from __future__ import annotations

import re
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
V1_IGNORED_EVENTS: Final = frozenset({"heartbeat", "systemStatus", "pong", "subscriptionStatus"})
V1_IGNORED_CHANNELS: Final = frozenset({"book", "ticker", "ohlc", "spread"})
SIDES: Final[Mapping[str, str]] = {"buy": "buy", "sell": "sell"}  # Kraken reports the taker side
V1_SIDES: Final[Mapping[str, str]] = {"b": "buy", "s": "sell"}
_DECIMAL_SECONDS: Final = re.compile(r"^(\d{1,11})(?:\.(\d{1,9}))?$")


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


def seconds_to_us(value: Any, name: str = "time") -> int:
    """A decimal string of epoch seconds (``"1618678150.826417"``) as exact integer µs (no float rounding);
    digits beyond µs are cut. Raises ``ParseError(BAD_TIMESTAMP)``."""
    match = _DECIMAL_SECONDS.match(value) if isinstance(value, str) else None
    if match is None:
        raise ParseError(DlqReason.BAD_TIMESTAMP, f"{name} {value!r} is not decimal epoch seconds")
    whole, fraction = match.groups()
    return int(whole) * 1_000_000 + int((fraction or "").ljust(6, "0")[:6])


def trade_from_v1(item: Any, raw_symbol: str, seen: dict[str, int]) -> TradeFields:
    """One ``[price, volume, time, side, order type, misc]`` of a v1 trade message as ``TradeFields``;
    ``seen`` counts synthetic ids already given in this message.

    Raises:
        ParseError: too few elements or a value of the wrong type.
    """
    if not isinstance(item, list) or len(item) < 4:
        raise ParseError(DlqReason.MALFORMED, "a v1 trade is [price, volume, time, side, ...]", raw_symbol)
    price, volume, when, code = item[:4]
    if type(code) is not str or code not in V1_SIDES:
        raise ParseError(DlqReason.BAD_SIDE, f"side {code!r} is not b/s", raw_symbol)
    key = f"{when}:{price}:{volume}"
    seen[key] = seen.get(key, 0) + 1
    return {
        "exchange": EXCHANGE,
        "symbol": separated_pair(raw_symbol),
        "raw_symbol": raw_symbol,
        "price": to_price(price),
        "size": to_size(volume, "volume"),
        "side": V1_SIDES[code],
        "trade_id": key if seen[key] == 1 else f"{key}#{seen[key]}",
        "event_time": seconds_to_us(when),
    }


def _parse_v1_array(message: list[Any]) -> ParseResult:
    """``[channelID, payload, channelName, pair]``: trades for ``trade``, ignored for other channels."""
    if len(message) < 4 or not isinstance(message[-2], str):
        raise ParseError(DlqReason.MALFORMED, "a v1 channel message is [channelID, data, channel, pair]")
    channel, raw_symbol = message[-2], message[-1]
    if channel == "trade":
        if not isinstance(raw_symbol, str) or not raw_symbol:
            raise ParseError(DlqReason.UNKNOWN_SYMBOL, f"pair {raw_symbol!r} is not a string")
        items = message[1]
        if not isinstance(items, list):
            raise ParseError(DlqReason.MALFORMED, f"trades are a {type(items).__name__}, expected a list")
        seen: dict[str, int] = {}
        return collect(EXCHANGE, items, lambda item: trade_from_v1(item, raw_symbol, seen))
    base = channel.split("-", 1)[0]  # v1 names carry parameters: "book-10", "ohlc-5"
    if base in V1_IGNORED_CHANNELS:
        return ParseResult([], [], ignored=base)
    raise ParseError(DlqReason.UNKNOWN_MESSAGE, f"v1 channel {channel!r} is not known")


def _v1_event(message: Mapping[str, Any]) -> ParseResult:
    event = message["event"]
    if event == "error" or message.get("status") == "error":
        raise ParseError(DlqReason.EXCHANGE_ERROR, f"{event}: {message.get('errorMessage')}")
    if isinstance(event, str) and event in V1_IGNORED_EVENTS:
        return ParseResult([], [], ignored=event)
    raise ParseError(DlqReason.UNKNOWN_MESSAGE, f"v1 event {event!r} is not known")


def _method_reply(message: Mapping[str, Any]) -> ParseResult:
    if message.get("success") is False:
        raise ParseError(DlqReason.EXCHANGE_ERROR, f"{message.get('method')}: {message.get('error')}")
    return ParseResult([], [], ignored=f"{message['method']}_reply")


@guarded(EXCHANGE)
def parse_message(raw: str | bytes) -> ParseResult:
    """One websocket message, v2 or v1 -> ``ParseResult``; each trade of a message is parsed on its own, so
    one bad trade is dead-lettered without losing its neighbours. Never raises."""
    decoded = load_json(raw)
    if isinstance(decoded, list):
        return _parse_v1_array(decoded)
    message = as_object(decoded)
    if "event" in message:
        return _v1_event(message)
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
