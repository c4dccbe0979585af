"""Bybit: v5 public ``publicTrade.{symbol}`` topics (spot, USDT/USDC perpetuals, inverse contracts) and the
legacy inverse ``/realtime`` ``trade.{symbol}`` topics (what the recorded capture holds).

Messages (https://bybit-exchange.github.io/docs/v5/websocket/public/trade)::

    {"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1672304486868, "data": [{"T": 1672304486865,
     "s": "BTCUSDT", "S": "Buy", "v": "0.001", "p": "16578.50", "L": "PlusTick", "i": "20f43950-...",
     "BT": false}]}

    legacy: {"topic": "trade.BTCUSD", "data": [{"trade_time_ms": 1618677786614, "symbol": "BTCUSD",
     "side": "Sell", "size": 4, "price": 60621.5, "trade_id": "5ffb8b77-...", "cross_seq": 5938955347, ...}]}

``S``/``side`` is the taker side, ``T``/``trade_time_ms`` ms. Trade ids are UUIDs on derivatives (unique,
not sequential: no gap detection, de-duplication only). One host serves every market, each on its own
path, and a message does not say its market (``BTCUSDT`` is spot and a perpetual), so there is one
exchange per market:

- ``bybit`` (``/v5/public/spot``): ``BTCUSDT`` -> ``BTC-USDT``;
- ``bybit_linear`` (``/v5/public/linear``): perpetual ``BTCUSDT`` -> ``BTC-USDT-SWAP``; sizes are base units;
- ``bybit_inverse`` (``/v5/public/inverse``, legacy ``/realtime``): perpetual ``BTCUSD`` -> ``BTC-USD-SWAP``,
  quarterly ``BTCUSDH21`` -> ``BTC-USD-H21``; one contract is worth 1 USD, so size (base units) =
  contracts / price.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import orjson

from producers.exchanges.common import (
    ParseError,
    Parser,
    as_object,
    collect,
    epoch_to_us,
    field,
    guarded,
    join_pair,
    load_json,
    side_field,
    split_pair,
    symbol_field,
    to_price,
    to_size,
    to_trade_id,
)
from producers.exchanges.spec import ExchangeSpec
from producers.trades import DlqReason, ParseResult, TradeFields
from tickflow.settings import Settings

SPOT: Final = "bybit"
LINEAR: Final = "bybit_linear"
INVERSE: Final = "bybit_inverse"
TOPICS_PER_SUBSCRIBE: Final = 10  # spot accepts at most 10 topics per request
SIDES: Final[Mapping[str, str]] = {"Buy": "buy", "Sell": "sell"}
IGNORED_TOPICS: Final = frozenset(
    {"orderbook", "orderBookL2_25", "orderBook_200", "tickers", "kline", "instrument_info", "insurance",
     "liquidation", "allLiquidation", "lt"}
)  # fmt: skip
_CONTRACT: Final = re.compile(r"^([A-Z0-9]+?)(USDT|USDC|USD|PERP)([A-Z][0-9]{2})?$")
# Field names of a v5 ``publicTrade`` element and of a legacy ``trade`` element.
V5_FIELDS: Final = ("s", "S", "p", "v", "i", "T")
LEGACY_FIELDS: Final = ("symbol", "side", "price", "size", "trade_id", "trade_time_ms")


def normalise_symbol(market: str, raw_symbol: str) -> str:
    """``raw_symbol`` of ``market`` (exchange name) as a normalised symbol with its contract (module
    docstring); a derivative symbol of another shape is upper-cased as it is."""
    if market == SPOT:
        return split_pair(raw_symbol)
    text = raw_symbol.upper()
    if "-" in text:  # USDC contracts: BTC-PERP, BTC-26DEC25
        base, _, contract = text.partition("-")
        return f"{join_pair(base, 'USDC')}-{'SWAP' if contract == 'PERP' else contract}"
    match = _CONTRACT.match(text)
    if match is None:
        return text
    base, quote, expiry = match.groups()
    if quote == "PERP":  # BTCPERP: the USDC perpetual
        quote = "USDC"
    return f"{join_pair(base, quote)}-{expiry or 'SWAP'}"


def trade_from_fields(market: str, data: Any, names: tuple[str, ...]) -> TradeFields:
    """One trade element (``names``: its symbol, side, price, size, id and time fields) as ``TradeFields``.

    Raises:
        ParseError: a field is missing or has the wrong type.
    """
    item = as_object(data, "trade")
    symbol_name, side_name, price_name, size_name, id_name, time_name = names
    raw_symbol = symbol_field(item, symbol_name)
    side = side_field(item, side_name, SIDES, "Buy/Sell", raw_symbol)
    price = to_price(field(item, price_name), price_name)
    size = to_size(field(item, size_name), size_name)
    if market == INVERSE and price > 0:
        size = size / price  # contracts of 1 USD -> base coin
    return {
        "exchange": market,
        "symbol": normalise_symbol(market, raw_symbol),
        "raw_symbol": raw_symbol,
        "price": price,
        "size": size,
        "side": side,
        "trade_id": to_trade_id(field(item, id_name), id_name),
        "event_time": epoch_to_us(field(item, time_name), time_name),
    }


def _parse(market: str, raw: str | bytes) -> ParseResult:
    message = as_object(load_json(raw))
    topic = message.get("topic")
    if isinstance(topic, str):
        kind = topic.split(".", 1)[0]
        if kind in ("publicTrade", "trade"):
            items = field(message, "data")
            if not isinstance(items, list):
                raise ParseError(DlqReason.MALFORMED, f"data is a {type(items).__name__}, expected a list")
            names = V5_FIELDS if kind == "publicTrade" else LEGACY_FIELDS
            return collect(market, items, lambda item: trade_from_fields(market, item, names))
        if kind in IGNORED_TOPICS:
            return ParseResult([], [], ignored=kind)
        raise ParseError(DlqReason.UNKNOWN_MESSAGE, f"topic {topic!r} is not known")
    if message.get("success") is False:
        raise ParseError(DlqReason.EXCHANGE_ERROR, f"{message.get('ret_msg')}: {message.get('request')}")
    if message.get("success") is True or message.get("op") in ("subscribe", "pong", "ping"):
        op = message.get("op") or as_object(message.get("request") or {}, "request").get("op")
        return ParseResult([], [], ignored=f"{op or 'request'}_reply")
    raise ParseError(DlqReason.UNKNOWN_MESSAGE, "no topic and not a request reply")


def _parser(market: str) -> Parser:
    @guarded(market)
    def parse(raw: str | bytes) -> ParseResult:
        return _parse(market, raw)

    parse.__doc__ = f"One Bybit ``{market}`` websocket message -> ``ParseResult``. Never raises."
    return parse


parse_spot: Final = _parser(SPOT)
parse_linear: Final = _parser(LINEAR)
parse_inverse: Final = _parser(INVERSE)


def to_exchange_symbol(symbol: str) -> str:
    """A normalised symbol as Bybit spells it: ``BTC-USDT`` and ``BTC-USDT-SWAP`` -> ``BTCUSDT``,
    ``BTC-USD-H21`` -> ``BTCUSDH21``, ``BTC-USDC-SWAP`` -> ``BTCPERP``."""
    parts = symbol.split("-")
    if len(parts) == 3 and parts[1] == "USDC":
        return f"{parts[0]}PERP" if parts[2] == "SWAP" else f"{parts[0]}-{parts[2]}"
    return "".join(parts[:2]) + (parts[2] if len(parts) == 3 and parts[2] != "SWAP" else "")


def subscribe(symbols: Sequence[str], settings: Settings) -> list[str]:
    """v5 ``subscribe`` requests for the ``publicTrade`` topic of each symbol, 10 topics each."""
    topics = [f"publicTrade.{to_exchange_symbol(s)}" for s in symbols]
    chunks = [topics[i : i + TOPICS_PER_SUBSCRIBE] for i in range(0, len(topics), TOPICS_PER_SUBSCRIBE)]
    return [orjson.dumps({"op": "subscribe", "args": chunk}).decode() for chunk in chunks]


def _spec(name: str, parse: Callable[[str | bytes], ParseResult], path: str, *legacy: str) -> ExchangeSpec:
    return ExchangeSpec(
        name=name,
        ws_url=f"wss://stream.bybit.com{path}",
        parse=parse,
        subscribe=subscribe,
        hosts=tuple(
            f"{host}{p}" for host in ("stream.bybit.com", "stream.bytick.com") for p in (path, *legacy)
        ),
    )


SPOT_SPEC: Final = _spec(SPOT, parse_spot, "/v5/public/spot")
LINEAR_SPEC: Final = _spec(LINEAR, parse_linear, "/v5/public/linear", "/realtime_public")
INVERSE_SPEC: Final = _spec(INVERSE, parse_inverse, "/v5/public/inverse", "/realtime")
