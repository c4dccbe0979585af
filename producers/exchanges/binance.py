"""Binance spot, Binance.US and USD-M futures: ``trade`` and ``aggTrade`` streams (raw or combined), the REST
``aggTrades`` endpoint, and the public-data ``trades``/``aggTrades`` CSV files.

Messages (https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams)::

    {"stream": "ctkusdt@aggTrade", "data": {"e": "aggTrade", "E": 1626992741575, "a": 16599292,
     "s": "CTKUSDT", "p": "1.01100", "q": "10", "f": 23961322, "l": 23961322, "T": 1626992741421,
     "m": false}}

``m`` is "the buyer is the market maker", so the taker side is ``sell`` when true. ``T`` is the trade time
in ms (µs on spot connections opened with ``timeUnit=MICROSECOND`` and in public-data files from 2025):
``epoch_to_us`` infers the unit. Trade ids (``t``) and aggregate trade ids (``a``) count up by one per
symbol; subscribe to one of the two per symbol, since the dedup key is (exchange, symbol, id). Symbols are
concatenated (``BTCUSDT``) and normalised by their quote asset (``BTC-USDT``).

Binance.US (``stream.binance.us``, REST ``api.binance.us``) speaks the spot protocol unchanged; its ticks
carry ``exchange="binance_us"``. USD-M futures keep their contract in the symbol so they never mix with
spot bars: perpetual ``BTCUSDT`` -> ``BTC-USDT-SWAP``, quarterly ``BTCUSDT_230929`` -> ``BTC-USDT-230929``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from producers.exchanges.common import (
    ParseError,
    as_object,
    epoch_to_us,
    field,
    guarded,
    load_json,
    split_pair,
    symbol_field,
    to_price,
    to_size,
    to_trade_id,
)
from producers.exchanges.spec import ExchangeSpec, FetchTrades, GetJson
from producers.trades import DlqReason, ParseResult, TradeFields
from tickflow.settings import Settings

SPOT: Final = "binance"
FUTURES: Final = "binance_futures"
US: Final = "binance_us"
PAGE_LIMIT: Final = 1000
STREAMS_PER_SUBSCRIBE: Final = 50
ID_FIELD: Final[Mapping[str, str]] = {"trade": "t", "aggTrade": "a"}
IGNORED_EVENTS: Final = frozenset(
    {"depthUpdate", "kline", "continuous_kline", "bookTicker", "24hrTicker", "24hrMiniTicker",
     "markPriceUpdate", "forceOrder", "compositeIndex", "avgPrice"}
)  # fmt: skip
CsvKind = Literal["trades", "aggTrades"]


def _taker_side(buyer_is_maker: Any) -> str:
    if isinstance(buyer_is_maker, bool):
        return "sell" if buyer_is_maker else "buy"
    raise ParseError(DlqReason.BAD_SIDE, f"m {buyer_is_maker!r} is not a boolean")


def trade_from_event(exchange: str, event: Mapping[str, Any], kind: str, raw_symbol: str) -> TradeFields:
    """A ``trade``/``aggTrade`` event or REST aggTrade object (``kind`` names which) as ``TradeFields``.

    Raises:
        ParseError: a field is missing or has the wrong type.
    """
    return {
        "exchange": exchange,
        "symbol": normalise_symbol(exchange, raw_symbol),
        "raw_symbol": raw_symbol,
        "price": to_price(field(event, "p")),
        "size": to_size(field(event, "q")),
        "side": _taker_side(event.get("m")),
        "trade_id": to_trade_id(field(event, ID_FIELD[kind])),
        "event_time": epoch_to_us(field(event, "T"), "T"),
    }


def _parse(exchange: str, raw: str | bytes) -> ParseResult:
    message = as_object(load_json(raw))
    event = as_object(message["data"], "data") if "data" in message and "stream" in message else message
    kind = event.get("e")
    if kind in ID_FIELD:
        return ParseResult([trade_from_event(exchange, event, kind, symbol_field(event, "s"))], [])
    if isinstance(kind, str) and kind in IGNORED_EVENTS:
        return ParseResult([], [], ignored=kind)
    if "result" in message and "id" in message:
        return ParseResult([], [], ignored="subscription_response")
    if "code" in message or "error" in message:
        raise ParseError(DlqReason.EXCHANGE_ERROR, orjson.dumps(message).decode()[:500])
    if kind is None and {"u", "s", "b", "a"} <= event.keys():
        return ParseResult([], [], ignored="bookTicker")  # spot bookTicker events carry no "e"
    if kind is None and "lastUpdateId" in event:
        return ParseResult([], [], ignored="depth")
    raise ParseError(DlqReason.UNKNOWN_MESSAGE, f"event type {kind!r} is not known")


@guarded(SPOT)
def parse_spot(raw: str | bytes) -> ParseResult:
    """One Binance spot websocket message -> ``ParseResult``. Never raises."""
    return _parse(SPOT, raw)


@guarded(US)
def parse_us(raw: str | bytes) -> ParseResult:
    """One Binance.US websocket message (the spot protocol) -> ``ParseResult``. Never raises."""
    return _parse(US, raw)


@guarded(FUTURES)
def parse_futures(raw: str | bytes) -> ParseResult:
    """One Binance USD-M futures websocket message -> ``ParseResult``. Never raises."""
    return _parse(FUTURES, raw)


def normalise_symbol(exchange: str, raw_symbol: str) -> str:
    """``BTCUSDT`` -> ``BTC-USDT`` on spot; on futures ``BTCUSDT`` -> ``BTC-USDT-SWAP`` (perpetual) and
    ``BTCUSDT_230929`` -> ``BTC-USDT-230929`` (delivery)."""
    if exchange != FUTURES:
        return split_pair(raw_symbol)
    pair, _, expiry = raw_symbol.partition("_")
    return f"{split_pair(pair)}-{expiry.upper() or 'SWAP'}"


def to_stream_symbol(symbol: str) -> str:
    """A normalised symbol as Binance spells it in stream names (lower case): ``BTC-USDT`` -> ``btcusdt``,
    ``BTC-USDT-SWAP`` -> ``btcusdt``, ``BTC-USDT-230929`` -> ``btcusdt_230929``."""
    parts = symbol.split("-")
    pair = "".join(parts[:2])
    if len(parts) > 2 and parts[2] != "SWAP":
        pair = f"{pair}_{parts[2]}"
    return pair.lower()


def subscribe(symbols: Sequence[str], settings: Settings) -> list[str]:
    """``SUBSCRIBE`` requests for the ``aggTrade`` stream of each symbol, at most 50 streams each
    (the client paces them; Binance allows 5 incoming messages per second on spot)."""
    streams = [f"{to_stream_symbol(s)}@aggTrade" for s in symbols]
    chunks = [streams[i : i + STREAMS_PER_SUBSCRIBE] for i in range(0, len(streams), STREAMS_PER_SUBSCRIBE)]
    return [
        orjson.dumps({"method": "SUBSCRIBE", "params": chunk, "id": n}).decode()
        for n, chunk in enumerate(chunks, start=1)
    ]


def _fetcher(exchange: str, path: str) -> FetchTrades:
    async def fetch_trades(get_json: GetJson, symbol: str, first_id: int, last_id: int) -> list[TradeFields]:
        """Aggregate trades of ``symbol`` with ids in ``[first_id, last_id]``, oldest first, paging
        forwards with ``fromId``. Raises ``ParseError`` on a malformed REST object and whatever ``get_json``
        raises after its retries."""
        raw_symbol = to_stream_symbol(symbol).upper()
        found: list[TradeFields] = []
        cursor = first_id
        while cursor <= last_id:
            limit = min(PAGE_LIMIT, last_id - cursor + 1)
            page = await get_json(path, {"symbol": raw_symbol, "fromId": cursor, "limit": limit})
            if not isinstance(page, list) or not page:
                break
            trades = [
                trade_from_event(exchange, as_object(i, "aggTrade"), "aggTrade", raw_symbol) for i in page
            ]
            found.extend(t for t in trades if first_id <= int(t["trade_id"]) <= last_id)
            newest = max(int(t["trade_id"]) for t in trades)
            if newest < cursor:  # the server ignored fromId: stop instead of looping
                break
            cursor = newest + 1
        return found

    return fetch_trades


def symbol_from_filename(path: Path) -> str:
    """The raw symbol of a public-data file: ``BTCUSDT-aggTrades-2024-01-01.csv`` -> ``BTCUSDT``."""
    return path.name.split("-", 1)[0].upper()


def trade_from_csv_row(exchange: str, kind: CsvKind, raw_symbol: str, row: Sequence[str]) -> TradeFields:
    """One row of a public-data CSV (``trades``: id, price, qty, quote_qty, time, is_buyer_maker[, ...];
    ``aggTrades``: agg_trade_id, price, quantity, first_trade_id, last_trade_id, transact_time,
    is_buyer_maker[, ...]) as ``TradeFields``; times in ms before 2025 and µs after.

    Raises:
        ParseError: too few columns or a value of the wrong type.
    """
    time_col, maker_col = (4, 5) if kind == "trades" else (5, 6)
    if len(row) <= maker_col:
        raise ParseError(DlqReason.MISSING_FIELD, f"{len(row)} columns, expected at least {maker_col + 1}")
    maker = row[maker_col].strip().lower()
    if maker not in ("true", "false"):
        raise ParseError(DlqReason.BAD_SIDE, f"is_buyer_maker {row[maker_col]!r} is not true/false")
    return {
        "exchange": exchange,
        "symbol": normalise_symbol(exchange, raw_symbol),
        "raw_symbol": raw_symbol,
        "price": to_price(row[1]),
        "size": to_size(row[2]),
        "side": "sell" if maker == "true" else "buy",
        "trade_id": to_trade_id(row[0]),
        "event_time": epoch_to_us(row[time_col], "time"),
    }


SPOT_SPEC: Final = ExchangeSpec(
    name=SPOT,
    ws_url="wss://stream.binance.com:9443/stream",
    parse=parse_spot,
    subscribe=subscribe,
    hosts=("stream.binance.com", "data-stream.binance.vision"),
    sequential_ids=True,
    rest_url="https://api.binance.com",
    fetch_trades=_fetcher(SPOT, "/api/v3/aggTrades"),
    rest_min_interval_s=0.1,  # aggTrades weighs 2 of 6000 per minute
)
US_SPEC: Final = ExchangeSpec(
    name=US,
    ws_url="wss://stream.binance.us:9443/stream",
    parse=parse_us,
    subscribe=subscribe,
    hosts=("stream.binance.us",),
    sequential_ids=True,
    rest_url="https://api.binance.us",
    fetch_trades=_fetcher(US, "/api/v3/aggTrades"),
    rest_min_interval_s=0.1,  # the spot API's weights and limits
)
FUTURES_SPEC: Final = ExchangeSpec(
    name=FUTURES,
    ws_url="wss://fstream.binance.com/stream",
    parse=parse_futures,
    subscribe=subscribe,
    hosts=("fstream.binance.com",),
    sequential_ids=True,
    rest_url="https://fapi.binance.com",
    fetch_trades=_fetcher(FUTURES, "/fapi/v1/aggTrades"),
    rest_min_interval_s=0.25,  # aggTrades weighs 20 of 2400 per minute
)
