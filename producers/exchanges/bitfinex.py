"""Bitfinex websocket API v2: the ``trades`` channel.

Messages (https://docs.bitfinex.com/reference/ws-public-trades). Subscribing numbers the channel::

    {"event": "subscribed", "channel": "trades", "chanId": 232959, "symbol": "tBFTUSD", "pair": "BFTUSD"}

then data arrives as arrays on that number: the snapshot of recent trades, newest first, then one
``te`` (trade executed) per trade and a ``tu`` (trade update) repeating it; with the sequence flag
(``conf`` 65536) a sequence number is appended, and ``hb`` is a heartbeat::

    [232959, [[669899159, 1618665870435, 166.391496, 0.076989], ...], 8]
    [232959, "te", [669899160, 1618665871000, -12.5, 0.07699], 9]
    [232959, "tu", [669899160, 1618665871000, -12.5, 0.07699], 10]
    [232959, "hb", 144]

A trade is ``[ID, MTS (ms), AMOUNT, PRICE]``: AMOUNT > 0 a taker buy, < 0 a taker sell, size = |AMOUNT|.
``tu`` carries the same trade as its ``te`` and is skipped (and a re-sent snapshot after a reconnect is
de-duplicated by id), so no trade is doubled. Ids are unique but shared by all pairs (not sequential per
pair): no gap detection.

Because data messages name only the channel number, the parser is stateful: ``new_parser`` makes one per
connection or capture, which learns the numbers from ``subscribed`` events. Symbols: ``tBTCUSD`` ->
``BTC-USD``, ``tTESTBTC:TESTUSD`` -> ``TESTBTC-TESTUSD``; Bitfinex's own codes are mapped (``UST`` ->
``USDT``, ``UDC`` -> ``USDC``...), perpetuals (``tBTCF0:USTF0``) -> ``BTC-USDT-SWAP``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from producers.exchanges.common import (
    ParseError,
    Parser,
    as_object,
    collect,
    epoch_to_us,
    guarded,
    join_pair,
    load_json,
    to_number,
    to_price,
    to_trade_id,
)
from producers.exchanges.spec import ExchangeSpec
from producers.trades import DlqReason, ParseResult, TradeFields
from tickflow.settings import Settings

EXCHANGE: Final = "bitfinex"
SEQUENCE_FLAG: Final = 65536
CURRENCY_CODES: Final[Mapping[str, str]] = {
    "UST": "USDT", "UDC": "USDC", "DSH": "DASH", "IOT": "IOTA", "QTM": "QTUM", "DAT": "DATA", "QSH": "QASH",
    "YYW": "YOYOW", "MNA": "MANA", "SNG": "SNGLS", "ALG": "ALGO", "AMP": "AMPL", "TSD": "TUSD",
}  # fmt: skip
IGNORED_EVENTS: Final = frozenset({"info", "conf", "unsubscribed", "pong"})


def normalise_symbol(raw_symbol: str) -> str:
    """``tBTCUSD`` -> ``BTC-USD``; see the module docstring."""
    text = raw_symbol.removeprefix("t").upper()
    if ":" in text:
        base, quote = text.split(":", 1)
    elif len(text) == 6:
        base, quote = text[:3], text[3:]
    else:
        return text
    if base.endswith("F0") and quote.endswith("F0"):  # perpetual: BTCF0:USTF0
        base, quote = base[:-2], quote[:-2]
        return f"{join_pair(CURRENCY_CODES.get(base, base), CURRENCY_CODES.get(quote, quote))}-SWAP"
    return join_pair(CURRENCY_CODES.get(base, base), CURRENCY_CODES.get(quote, quote))


def trade_from_array(item: Any, raw_symbol: str) -> TradeFields:
    """``[ID, MTS, AMOUNT, PRICE]`` of ``raw_symbol`` as ``TradeFields``.

    Raises:
        ParseError: not such an array, or a value of the wrong type.
    """
    if not isinstance(item, list) or len(item) < 4:
        raise ParseError(DlqReason.MALFORMED, "a trade is [ID, MTS, AMOUNT, PRICE]", raw_symbol)
    trade_id, when, amount, price = item[:4]
    signed = to_number(amount, DlqReason.BAD_SIZE, "amount")
    if signed == 0:
        raise ParseError(DlqReason.BAD_SIZE, "amount 0 has no side", raw_symbol)
    return {
        "exchange": EXCHANGE,
        "symbol": normalise_symbol(raw_symbol),
        "raw_symbol": raw_symbol,
        "price": to_price(price),
        "size": abs(signed),
        "side": "buy" if signed > 0 else "sell",
        "trade_id": to_trade_id(trade_id, "id"),
        "event_time": epoch_to_us(when, "mts"),
    }


class BitfinexParser:
    """The parser of one connection (or capture): channel number -> (channel, symbol)."""

    def __init__(self) -> None:
        self.channels: dict[int, tuple[str, str]] = {}
        self.parse: Parser = guarded(EXCHANGE)(self._parse)

    def __call__(self, raw: str | bytes) -> ParseResult:
        """One websocket message -> ``ParseResult``. Never raises."""
        return self.parse(raw)

    def _parse(self, raw: str | bytes) -> ParseResult:
        message = load_json(raw)
        if isinstance(message, list):
            return self._data(message)
        return self._event(as_object(message))

    def _event(self, message: Mapping[str, Any]) -> ParseResult:
        event = message.get("event")
        if event == "subscribed":
            chan_id, channel = message.get("chanId"), message.get("channel")
            if type(chan_id) is not int or not isinstance(channel, str):
                raise ParseError(DlqReason.MALFORMED, "subscribed without chanId/channel")
            symbol = message.get("symbol") or message.get("key") or ""
            self.channels[chan_id] = (channel, symbol if isinstance(symbol, str) else "")
            return ParseResult([], [], ignored="subscribed")
        if event == "error":
            raise ParseError(DlqReason.EXCHANGE_ERROR, f"{message.get('code')}: {message.get('msg')}")
        if isinstance(event, str) and event in IGNORED_EVENTS:
            if event == "unsubscribed" and type(message.get("chanId")) is int:
                self.channels.pop(message["chanId"], None)
            return ParseResult([], [], ignored=event)
        raise ParseError(DlqReason.UNKNOWN_MESSAGE, f"event {event!r} is not known")

    def _data(self, message: list[Any]) -> ParseResult:
        if len(message) < 2 or type(message[0]) is not int:
            raise ParseError(DlqReason.MALFORMED, "a channel message is [chanId, payload, ...]")
        payload = message[1]
        if payload == "hb":  # may come before its channel's subscribed event (seen in the capture)
            return ParseResult([], [], ignored="heartbeat")
        known = self.channels.get(message[0])
        if known is None:
            raise ParseError(DlqReason.UNKNOWN_MESSAGE, f"channel {message[0]} was not subscribed")
        channel, raw_symbol = known
        if channel != "trades":
            return ParseResult([], [], ignored=channel)
        if payload == "te":
            if len(message) < 3:
                raise ParseError(DlqReason.MALFORMED, "te without a trade", raw_symbol)
            return ParseResult([trade_from_array(message[2], raw_symbol)], [])
        if payload == "tu":
            return ParseResult([], [], ignored="tu")  # the same trade as its te
        if isinstance(payload, list):
            return collect(EXCHANGE, payload, lambda item: trade_from_array(item, raw_symbol))
        raise ParseError(
            DlqReason.UNKNOWN_MESSAGE, f"trades payload {payload!r:.40} is not known", raw_symbol
        )


def parse_message(raw: str | bytes) -> ParseResult:
    """One message parsed without connection state: events only; channel data, whose channel number is
    unknown here, is rejected (``unknown_message``). Streams use ``SPEC.parser()``. Never raises."""
    return BitfinexParser()(raw)


def subscribe(symbols: Sequence[str], settings: Settings) -> list[str]:
    """The ``conf`` enabling sequence numbers, then one ``subscribe`` to ``trades`` per symbol
    (``BTC-USD`` -> ``tBTCUSD``; a 4+ letter side needs the colon form, ``tTESTBTC:TESTUSD``)."""
    aliases = {v: k for k, v in CURRENCY_CODES.items()}
    messages = [orjson.dumps({"event": "conf", "flags": SEQUENCE_FLAG}).decode()]
    for symbol in symbols:
        base, _, quote = symbol.partition("-")
        base, quote = aliases.get(base, base), aliases.get(quote, quote)
        pair = f"{base}{quote}" if len(base) == len(quote) == 3 else f"{base}:{quote}"
        messages.append(
            orjson.dumps({"event": "subscribe", "channel": "trades", "symbol": f"t{pair}"}).decode()
        )
    return messages


SPEC: Final = ExchangeSpec(
    name=EXCHANGE,
    ws_url="wss://api-pub.bitfinex.com/ws/2",
    parse=parse_message,
    subscribe=subscribe,
    hosts=("api.bitfinex.com", "api-pub.bitfinex.com"),
    new_parser=BitfinexParser,
)
