"""Helpers every exchange parser shares: JSON decoding, field conversion, timestamps, symbol normalisation,
and the guard that turns any parser failure into a ``Rejection`` instead of an exception.

Conversions only fix types (text to float, epoch to µs); whether a value is acceptable (positive, finite,
recent, a known symbol) is decided once, in ``producers.validation``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from producers.trades import DlqReason, ParseResult, Rejection, TradeFields, raw_text
from tickflow.micros import to_micros

# Quote assets recognised when splitting concatenated pairs (``BTCUSDT``, ``ethusd``); longest match wins.
QUOTE_ASSETS: Final[tuple[str, ...]] = tuple(
    sorted(
        (
            "FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USDP", "DAI", "PAX", "UST", "USD", "EUR", "GBP",
            "JPY", "TRY", "BRL", "AUD", "CAD", "CHF", "RUB", "UAH", "BIDR", "IDRT", "NGN", "ZAR", "PLN",
            "RON", "ARS", "MXN", "BTC", "ETH", "BNB", "XRP", "TRX", "DOGE", "DOT", "SOL",
        ),
        key=len,
        reverse=True,
    )
)  # fmt: skip
# Legacy asset codes some exchanges still use.
ASSET_ALIASES: Final[Mapping[str, str]] = {"XBT": "BTC", "XDG": "DOGE"}


class ParseError(Exception):
    """A raw message or one trade in it cannot become a trade; carries the dead-letter reason."""

    def __init__(self, reason: DlqReason, detail: str, symbol: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.symbol = symbol


def load_json(raw: str | bytes) -> Any:
    """Decode a JSON message. Raises ``ParseError(MALFORMED)`` on invalid UTF-8 or JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ParseError(DlqReason.MALFORMED, f"invalid JSON: {exc}") from None


def as_object(value: Any, what: str = "message") -> dict[str, Any]:
    """``value`` when it is a JSON object, else ``ParseError(MALFORMED)``."""
    if not isinstance(value, dict):
        raise ParseError(DlqReason.MALFORMED, f"{what} is a {type(value).__name__}, expected an object")
    return value


def field(obj: Mapping[str, Any], name: str) -> Any:
    """``obj[name]``; raises ``ParseError(MISSING_FIELD)`` when absent, null or empty."""
    value = obj.get(name)
    if value is None or value == "":
        raise ParseError(DlqReason.MISSING_FIELD, f"field {name!r} is missing or empty")
    return value


def symbol_field(obj: Mapping[str, Any], name: str) -> str:
    """``obj[name]``, the exchange's spelling of a symbol; raises ``ParseError(MISSING_FIELD)`` when absent,
    null or empty and ``ParseError(UNKNOWN_SYMBOL)`` when not a string."""
    value = field(obj, name)
    if not isinstance(value, str):
        raise ParseError(DlqReason.UNKNOWN_SYMBOL, f"{name} {value!r} is not a string")
    return value


def side_field(
    obj: Mapping[str, Any], name: str, taker_side: Mapping[Any, str], expected: str, symbol: str
) -> str:
    """The taker side (``buy``/``sell``) coded by ``obj[name]``: ``taker_side[obj[name]]``.

    A code must have the exact type of a key (so ``True`` or ``1.0`` is not the code ``1``). Raises
    ``ParseError(MISSING_FIELD)`` when absent, null or empty and ``ParseError(BAD_SIDE)``, whose detail
    says the codes are ``expected``, for any other value.
    """
    code = field(obj, name)
    if type(code) not in {type(key) for key in taker_side} or code not in taker_side:
        raise ParseError(DlqReason.BAD_SIDE, f"{name} {code!r} is not {expected}", symbol)
    return taker_side[code]


def to_number(value: Any, reason: DlqReason, name: str) -> float:
    """A JSON number or numeric string as float (``"25785.33"`` -> ``25785.33``); booleans and other types
    raise ``ParseError(reason)``. Range checks are validation's job."""
    if isinstance(value, float | int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ParseError(reason, f"{name} {value!r} is not a number")


def to_price(value: Any, name: str = "price") -> float:
    """Price in quote currency as float; ``ParseError(BAD_PRICE)`` when not numeric."""
    return to_number(value, DlqReason.BAD_PRICE, name)


def to_size(value: Any, name: str = "size") -> float:
    """Size in base units as float; ``ParseError(BAD_SIZE)`` when not numeric."""
    return to_number(value, DlqReason.BAD_SIZE, name)


def to_trade_id(value: Any, name: str = "trade_id") -> str:
    """A trade id (JSON integer or non-empty string) as text; ``ParseError(BAD_TRADE_ID)`` otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ParseError(DlqReason.BAD_TRADE_ID, f"{name} {value!r} is not an integer or non-empty string")


def epoch_to_us(value: Any, name: str = "timestamp") -> int:
    """An epoch timestamp in s, ms, µs or ns (number or numeric string) as integer µs, UTC.

    The unit is inferred from the magnitude: < 1e11 seconds, < 1e14 milliseconds, < 1e17 microseconds,
    else nanoseconds (so 2001–5138 are unambiguous in every unit; Binance's switch from ms to µs in 2025
    needs no flag). Raises ``ParseError(BAD_TIMESTAMP)`` for non-numeric, non-finite or negative values.
    """
    if isinstance(value, str):
        text = value.strip()
        number: float | int
        try:
            number = int(text)
        except ValueError:
            number = to_number(text, DlqReason.BAD_TIMESTAMP, name)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = value
    else:
        raise ParseError(DlqReason.BAD_TIMESTAMP, f"{name} {value!r} is not a number")
    if not 0 <= number < 1e20:  # also rejects NaN
        raise ParseError(DlqReason.BAD_TIMESTAMP, f"{name} {value!r} is out of range")
    if number < 1e11:
        return round(number * 1_000_000)
    if number < 1e14:
        return round(number * 1_000)
    if number < 1e17:
        return int(number)
    return int(number) // 1_000


def iso_to_us(value: Any, name: str = "time") -> int:
    """An ISO-8601 time (``2023-09-05T16:00:01.281719Z``; no offset means UTC; digits beyond µs are cut)
    as integer µs since the epoch. Raises ``ParseError(BAD_TIMESTAMP)``."""
    if not isinstance(value, str):
        raise ParseError(DlqReason.BAD_TIMESTAMP, f"{name} {value!r} is not an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ParseError(DlqReason.BAD_TIMESTAMP, f"{name} {value!r} is not ISO-8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return to_micros(moment)
    except OverflowError:
        raise ParseError(DlqReason.BAD_TIMESTAMP, f"{name} {value!r} is out of range") from None


def join_pair(base: str, quote: str) -> str:
    """``BASE-QUOTE`` in upper case with legacy codes mapped (``XBT`` -> ``BTC``)."""
    base, quote = base.upper(), quote.upper()
    return f"{ASSET_ALIASES.get(base, base)}-{ASSET_ALIASES.get(quote, quote)}"


def split_pair(raw_symbol: str) -> str:
    """Normalise a concatenated pair (``BTCUSDT``, ``ethusd``) to ``BASE-QUOTE`` by the longest known quote
    asset suffix; a symbol without a known quote (a stock, ``AAPL``) is returned upper-cased."""
    text = raw_symbol.upper()
    for quote in QUOTE_ASSETS:
        if text.endswith(quote) and len(text) > len(quote):
            return join_pair(text[: -len(quote)], quote)
    return text


def separated_pair(raw_symbol: str) -> str:
    """Normalise ``BTC/USD``, ``btc-usd`` or ``XBT/EUR`` to ``BASE-QUOTE``."""
    base, sep, quote = raw_symbol.replace("/", "-").partition("-")
    return join_pair(base, quote) if sep and base and quote else raw_symbol.upper()


Parser = Callable[[str | bytes], ParseResult]


def guarded(exchange: str) -> Callable[[Parser], Parser]:
    """Decorate a message parser so that it never raises: a ``ParseError`` becomes a ``Rejection`` with its
    reason, any other exception (hostile shapes: a list where an object was expected...) a ``MALFORMED``
    rejection naming the exception. The raw message is kept as text."""

    def decorate(parse: Parser) -> Parser:
        @functools.wraps(parse)
        def wrapper(raw: str | bytes) -> ParseResult:
            try:
                return parse(raw)
            except ParseError as exc:
                rejection = Rejection(exc.reason, exc.detail, raw_text(raw), exchange, exc.symbol)
            except Exception as exc:  # never crash on input: dead-letter it with the exception's text
                detail = f"{type(exc).__name__}: {exc}"
                rejection = Rejection(DlqReason.MALFORMED, detail, raw_text(raw), exchange)
            return ParseResult([], [rejection])

        return wrapper

    return decorate


def collect(exchange: str, items: list[Any], parse_item: Callable[[Any], TradeFields | str]) -> ParseResult:
    """Parse each element of a message that carries several trades or events: ``parse_item`` returns a
    trade, or the type of a known non-trade event to skip (the last one is the result's ``ignored``). A bad
    element becomes a ``Rejection`` whose raw payload is that element and does not spoil its neighbours."""
    trades: list[TradeFields] = []
    rejects: list[Rejection] = []
    ignored: str | None = None
    for item in items:
        try:
            parsed = parse_item(item)
        except ParseError as exc:
            text = orjson.dumps(item).decode()
            rejects.append(Rejection(exc.reason, exc.detail, text, exchange, exc.symbol))
        except Exception as exc:  # hostile element shapes
            text = orjson.dumps(item).decode()
            rejects.append(Rejection(DlqReason.MALFORMED, f"{type(exc).__name__}: {exc}", text, exchange))
        else:
            if isinstance(parsed, str):
                ignored = parsed
            else:
                trades.append(parsed)
    return ParseResult(trades, rejects, ignored)


async def page_back_by_id(
    fetch_page: Callable[[int], Awaitable[list[TradeFields]]], first_id: int, last_id: int
) -> list[TradeFields]:
    """Trades with integer ids in ``[first_id, last_id]``, oldest first, for venues whose REST API pages
    backwards by trade id: ``fetch_page(cursor)`` returns the page of trades older than ``cursor`` (empty
    when there are none). Paging starts at ``last_id + 1`` and stops at ``first_id``, at an empty page, or
    when the server ignores the cursor (no loop). Raises whatever ``fetch_page`` raises."""
    found: list[TradeFields] = []
    cursor = last_id + 1
    while cursor > first_id:
        trades = await fetch_page(cursor)
        if not trades:
            break
        found.extend(t for t in trades if first_id <= int(t["trade_id"]) <= last_id)
        oldest = min(int(t["trade_id"]) for t in trades)
        if oldest >= cursor:  # the server ignored the cursor: stop instead of looping
            break
        cursor = oldest
    found.sort(key=lambda t: int(t["trade_id"]))
    return found
