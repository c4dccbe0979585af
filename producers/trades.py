"""The shapes that flow through ingestion before validation: normalised trades and rejections.

A parser turns one raw exchange message (or one CSV row) into a ``ParseResult``: zero or more
``TradeFields`` (a normalised but not yet validated trade, as a plain dict so the hot path can serialise
it without conversion) and zero or more ``Rejection`` (input that can never become a tick, with a reason
code). ``producers.validation`` then accepts or rejects each trade; accepted trades become
``tickflow.schemas.Tick`` wire records on ``tick_data``, rejections dead-letter records on
``tick_data.dlq``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, TypedDict


class TradeFields(TypedDict):
    """A normalised trade before validation; keys are a subset of ``tickflow.schemas.TICK_WIRE_FIELDS``.

    ``price`` in quote currency, ``size`` in base units, ``side`` the taker side (``buy``/``sell``/
    ``unknown``), ``event_time`` exchange time in integer µs since the Unix epoch (UTC). ``symbol`` is
    normalised (``BTC-USD``), ``raw_symbol`` as the exchange spells it (``BTCUSDT``, ``btcusd``).
    Validation adds ``v``, ``receipt_time`` and ``source``.
    """

    exchange: str
    symbol: str
    raw_symbol: str
    price: float
    size: float
    side: str
    trade_id: str
    event_time: int


class DlqReason(StrEnum):
    """Why input was rejected; the ``reason`` of a dead-letter record and the label of the reject counter.

    Every reason except ``duplicate`` produces a dead-letter record. Duplicates (same exchange, symbol and
    trade id within the de-duplication window) are expected after reconnects and backfills and carry no
    information the topic lacks, so they are dropped and counted (``tickflow_producer_rejected_total``
    with ``reason="duplicate"``, and ``IngestStats.duplicates``) — never silently.
    """

    MALFORMED = "malformed"  # not decodable: invalid UTF-8/JSON/CSV, wrong container type
    UNKNOWN_MESSAGE = "unknown_message"  # decodable but not a message type the parser knows
    EXCHANGE_ERROR = "exchange_error"  # an error message sent by the exchange
    MISSING_FIELD = "missing_field"  # a required field is absent or empty
    BAD_PRICE = "bad_price"  # not a finite number > 0
    BAD_SIZE = "bad_size"  # not a finite number > 0
    BAD_SIDE = "bad_side"  # not buy/sell/unknown (or the exchange's code for them)
    BAD_TRADE_ID = "bad_trade_id"  # absent, empty or not a string/integer
    BAD_TIMESTAMP = "bad_timestamp"  # unparseable, or outside the sane range (before 2000, in the future)
    CLOCK_SKEW = "clock_skew"  # live: event time further than `max_clock_skew_s` from receipt time
    UNKNOWN_SYMBOL = "unknown_symbol"  # not in the universe and not matching `symbol_pattern`
    DUPLICATE = "duplicate"  # seen within the de-duplication window: counted and dropped, no DLQ record


@dataclass(frozen=True, slots=True)
class Rejection:
    """Input that did not become a tick: the reason, a human-readable detail and the raw payload (text)."""

    reason: DlqReason
    detail: str
    raw: str
    exchange: str
    symbol: str | None = None


class ParseResult(NamedTuple):
    """What a parser made of one raw message: trades, rejections, and the message type when it was a
    known non-trade message (order book, heartbeat, subscription ack...) that is skipped and counted."""

    trades: list[TradeFields]
    rejects: list[Rejection]
    ignored: str | None = None


def raw_text(raw: str | bytes) -> str:
    """The raw payload as text for a dead-letter record; undecodable bytes are kept as ``\\xNN`` escapes."""
    return raw if isinstance(raw, str) else raw.decode("utf-8", errors="backslashreplace")
