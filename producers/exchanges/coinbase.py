"""Coinbase Exchange: the public websocket feed's ``matches`` channel and the REST trades endpoint.

Messages (https://docs.cdp.coinbase.com/exchange/docs/websocket-channels)::

    {"type": "match", "trade_id": 881614, "side": "sell", "size": "0.04", "price": "14.7775",
     "product_id": "BAND-GBP", "sequence": 333938799, "time": "2021-04-17T16:43:30.244075Z", ...}

``last_match`` (sent once per product on subscribing) has the same shape. Coinbase's ``side`` is the
*maker* order's side, so the taker side Tickflow stores is the opposite (checked against the ``ticker``
channel, whose ``side`` is the taker's, in the recorded capture). Trade ids count up by one per product,
so a jump is a gap; ``GET /products/{id}/trades?after=N`` returns the trades with ids below N, newest first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from producers.exchanges.common import (
    ParseError,
    as_object,
    field,
    guarded,
    iso_to_us,
    load_json,
    page_back_by_id,
    separated_pair,
    side_field,
    symbol_field,
    to_price,
    to_size,
    to_trade_id,
)
from producers.exchanges.spec import ExchangeSpec, GetJson
from producers.trades import DlqReason, ParseResult, TradeFields
from tickflow.settings import Settings

EXCHANGE: Final = "coinbase"
WS_URL: Final = "wss://ws-feed.exchange.coinbase.com"
REST_URL: Final = "https://api.exchange.coinbase.com"
PAGE_LIMIT: Final = 1000
TRADE_TYPES: Final = frozenset({"match", "last_match"})
IGNORED_TYPES: Final = frozenset(
    {"subscriptions", "heartbeat", "ticker", "snapshot", "l2update", "received", "open", "done", "change",
     "activate", "status"}
)  # fmt: skip
TAKER_SIDE: Final[Mapping[str, str]] = {"buy": "sell", "sell": "buy"}  # Coinbase reports the maker side


def trade_from_fields(data: Mapping[str, Any], product_id: str) -> TradeFields:
    """A websocket ``match`` or a REST trade object (which lacks ``product_id``) as ``TradeFields``.

    Raises:
        ParseError: a field is missing or has the wrong type.
    """
    side = side_field(data, "side", TAKER_SIDE, "buy/sell", product_id)
    return {
        "exchange": EXCHANGE,
        "symbol": separated_pair(product_id),
        "raw_symbol": product_id,
        "price": to_price(field(data, "price")),
        "size": to_size(field(data, "size")),
        "side": side,
        "trade_id": to_trade_id(field(data, "trade_id")),
        "event_time": iso_to_us(field(data, "time")),
    }


@guarded(EXCHANGE)
def parse_message(raw: str | bytes) -> ParseResult:
    """One websocket message -> ``ParseResult`` (one trade for ``match``/``last_match``, ``ignored`` for
    other known types, a rejection for errors and unknown types). Never raises."""
    message = as_object(load_json(raw))
    kind = message.get("type")
    if kind in TRADE_TYPES:
        return ParseResult([trade_from_fields(message, symbol_field(message, "product_id"))], [])
    if kind == "error":
        raise ParseError(DlqReason.EXCHANGE_ERROR, f"{message.get('message')}: {message.get('reason')}")
    if isinstance(kind, str) and kind in IGNORED_TYPES:
        return ParseResult([], [], ignored=kind)
    raise ParseError(DlqReason.UNKNOWN_MESSAGE, f"message type {kind!r} is not known")


def subscribe(symbols: Sequence[str], settings: Settings) -> list[str]:
    """One ``subscribe`` message for the ``matches`` channel of all products (product id = normalised
    symbol, ``BTC-USD``)."""
    message = {"type": "subscribe", "product_ids": list(symbols), "channels": ["matches"]}
    return [orjson.dumps(message).decode()]


async def fetch_trades(get_json: GetJson, symbol: str, first_id: int, last_id: int) -> list[TradeFields]:
    """Trades of ``symbol`` with ids in ``[first_id, last_id]``, oldest first, paging backwards from
    ``last_id`` with ``after`` cursors. Raises ``ParseError`` on a malformed REST trade and whatever
    ``get_json`` raises after its retries."""

    async def older_than(cursor: int) -> list[TradeFields]:
        page = await get_json(f"/products/{symbol}/trades", {"after": cursor, "limit": PAGE_LIMIT})
        if not isinstance(page, list):
            return []
        return [trade_from_fields(as_object(item, "trade"), symbol) for item in page]

    return await page_back_by_id(older_than, first_id, last_id)


SPEC: Final = ExchangeSpec(
    name=EXCHANGE,
    ws_url=WS_URL,
    parse=parse_message,
    subscribe=subscribe,
    hosts=("ws-feed.exchange.coinbase.com", "ws-feed.pro.coinbase.com"),
    sequential_ids=True,
    rest_url=REST_URL,
    fetch_trades=fetch_trades,
    rest_min_interval_s=0.15,  # public endpoints: 10 requests/s per IP
)
