"""OKX public websocket API v5: the ``trades`` channel, and the REST ``history-trades`` endpoint.

Messages (https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-trades-channel)::

    {"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [{"instId": "BTC-USDT",
     "tradeId": "338476308", "px": "30243.5", "sz": "0.001", "side": "buy", "ts": "1652459226050"}]}

``side`` is the taker side, ``ts`` ms. Instrument ids are already ``BASE-QUOTE`` and keep their contract:
``BTC-USDT`` (spot), ``BTC-USD-SWAP`` (perpetual), ``BTC-USD-220527`` (delivery), so derivatives never mix
with spot bars. ``tradeId`` counts up by one per instrument, so a jump is a gap, backfilled from
``GET /api/v5/market/history-trades?instId=..&type=1&after=N`` (trades with ids below N, newest first).

``sz`` is in base units on spot but in contracts on derivatives; Tickflow stores base units:
coin-margined (``-USD-``) contracts are worth 100 USD (BTC) or 10 USD (every other coin), so
size = contracts x face value / price; USDT/USDC-margined contracts are worth ``LINEAR_CONTRACT_VALUES``
of the base coin, and an instrument missing from that table is dead-lettered (``bad_size``) rather than
stored with a wrong size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    page_back_by_id,
    side_field,
    symbol_field,
    to_price,
    to_size,
    to_trade_id,
)
from producers.exchanges.spec import ExchangeSpec, GetJson
from producers.trades import DlqReason, ParseResult, TradeFields
from tickflow.settings import Settings

EXCHANGE: Final = "okx"
PAGE_LIMIT: Final = 100
ARGS_PER_SUBSCRIBE: Final = 100
SIDES: Final[Mapping[str, str]] = {"buy": "buy", "sell": "sell"}  # OKX reports the taker side
IGNORED_CHANNELS: Final = frozenset(
    {"tickers", "books", "books5", "books50-l2-tbt", "books-l2-tbt", "bbo-tbt", "candle1m", "mark-price",
     "funding-rate", "open-interest", "index-tickers", "status"}
)  # fmt: skip
IGNORED_EVENTS: Final = frozenset({"subscribe", "unsubscribe", "channel-conn-count"})
INVERSE_FACE_USD: Final[Mapping[str, float]] = {"BTC": 100.0}
"""USD face value of a coin-margined contract by base coin; any other coin: ``INVERSE_FACE_USD_OTHER``."""
INVERSE_FACE_USD_OTHER: Final = 10.0
LINEAR_CONTRACT_VALUES: Final[Mapping[str, float]] = {"BTC": 0.01, "ETH": 0.1, "SOL": 1.0, "XRP": 100.0,
                                                      "DOGE": 1000.0, "ADA": 100.0, "LTC": 1.0}  # fmt: skip
"""Base coins per USDT/USDC-margined contract (OKX instrument ``ctVal``) of the instruments Tickflow knows."""


def base_size(inst_id: str, contracts_or_base: float, price: float) -> float:
    """Size in base units of a trade of ``inst_id``: spot sizes as they are, contracts converted (see the
    module docstring).

    Raises:
        ParseError(BAD_SIZE): a USDT/USDC-margined contract whose value is not in the table.
    """
    parts = inst_id.split("-")
    if len(parts) < 3:
        return contracts_or_base
    base, quote = parts[0], parts[1]
    if quote == "USD":
        if price <= 0:
            raise ParseError(DlqReason.BAD_PRICE, f"px {price!r} cannot convert contracts", inst_id)
        face = INVERSE_FACE_USD.get(base, INVERSE_FACE_USD_OTHER)
        return contracts_or_base * face / price
    value = LINEAR_CONTRACT_VALUES.get(base)
    if value is None:
        raise ParseError(DlqReason.BAD_SIZE, f"contract value of {inst_id} is not known", inst_id)
    return contracts_or_base * value


def trade_from_fields(data: Any) -> TradeFields:
    """One element of a ``trades`` message's ``data`` (or of a REST page) as ``TradeFields``.

    Raises:
        ParseError: a field is missing or has the wrong type.
    """
    item = as_object(data, "trade")
    inst_id = symbol_field(item, "instId")
    side = side_field(item, "side", SIDES, "buy/sell", inst_id)
    price = to_price(field(item, "px"), "px")
    return {
        "exchange": EXCHANGE,
        "symbol": inst_id.upper(),
        "raw_symbol": inst_id,
        "price": price,
        "size": base_size(inst_id, to_size(field(item, "sz"), "sz"), price),
        "side": side,
        "trade_id": to_trade_id(field(item, "tradeId"), "tradeId"),
        "event_time": epoch_to_us(field(item, "ts"), "ts"),
    }


@guarded(EXCHANGE)
def parse_message(raw: str | bytes) -> ParseResult:
    """One websocket message -> ``ParseResult``; each element of ``data`` is parsed on its own. Never
    raises."""
    if raw in ("pong", b"pong"):
        return ParseResult([], [], ignored="pong")
    message = as_object(load_json(raw))
    event = message.get("event")
    if event == "error":
        raise ParseError(DlqReason.EXCHANGE_ERROR, f"{message.get('code')}: {message.get('msg')}")
    if isinstance(event, str):
        if event in IGNORED_EVENTS:
            return ParseResult([], [], ignored=event)
        raise ParseError(DlqReason.UNKNOWN_MESSAGE, f"event {event!r} is not known")
    arg = message.get("arg")
    channel = arg.get("channel") if isinstance(arg, dict) else None
    if channel == "trades":
        items = field(message, "data")
        if not isinstance(items, list):
            raise ParseError(DlqReason.MALFORMED, f"data is a {type(items).__name__}, expected a list")
        return collect(EXCHANGE, items, trade_from_fields)
    if isinstance(channel, str) and channel in IGNORED_CHANNELS:
        return ParseResult([], [], ignored=channel)
    raise ParseError(DlqReason.UNKNOWN_MESSAGE, f"channel {channel!r} is not known")


def subscribe(symbols: Sequence[str], settings: Settings) -> list[str]:
    """``subscribe`` requests for the ``trades`` channel of each instrument (instId = normalised symbol),
    at most 100 arguments each."""
    args = [{"channel": "trades", "instId": s} for s in symbols]
    chunks = [args[i : i + ARGS_PER_SUBSCRIBE] for i in range(0, len(args), ARGS_PER_SUBSCRIBE)]
    return [orjson.dumps({"op": "subscribe", "args": chunk}).decode() for chunk in chunks]


async def fetch_trades(get_json: GetJson, symbol: str, first_id: int, last_id: int) -> list[TradeFields]:
    """Trades of ``symbol`` with ids in ``[first_id, last_id]``, oldest first, paging backwards from
    ``last_id`` with ``after`` cursors (``type=1``: by trade id). Raises ``ParseError`` on a malformed REST
    answer and whatever ``get_json`` raises after its retries."""

    async def older_than(cursor: int) -> list[TradeFields]:
        params = {"instId": symbol, "type": 1, "after": cursor, "limit": PAGE_LIMIT}
        answer = as_object(await get_json("/api/v5/market/history-trades", params), "answer")
        if answer.get("code") not in ("0", 0):
            raise ParseError(DlqReason.EXCHANGE_ERROR, f"{answer.get('code')}: {answer.get('msg')}")
        page = answer.get("data")
        return [trade_from_fields(item) for item in page] if isinstance(page, list) else []

    return await page_back_by_id(older_than, first_id, last_id)


SPEC: Final = ExchangeSpec(
    name=EXCHANGE,
    ws_url="wss://ws.okx.com:8443/ws/v5/public",
    parse=parse_message,
    subscribe=subscribe,
    hosts=("ws.okx.com", "wsaws.okx.com"),
    sequential_ids=True,
    rest_url="https://www.okx.com",
    fetch_trades=fetch_trades,
    rest_min_interval_s=0.2,  # history-trades: 20 requests per 2 s
)
