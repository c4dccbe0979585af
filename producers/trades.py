"""The shapes that flow through ingestion before validation: normalised trades and rejections.

A parser turns one raw exchange message (or one CSV row) into a ``ParseResult``: zero or more
``TradeFields`` (a normalised but not yet validated trade, as a plain dict so the hot path can serialise
it without conversion) and zero or more ``Rejection`` (input that can never become a tick, with a reason
code, ``tickflow.validity.DlqReason``, re-exported here for the parsers with
``tickflow.dead_letter.raw_text``). ``producers.validation`` then
accepts or rejects each trade; accepted trades become ``tickflow.schemas.Tick`` wire records on
``tick_data``, rejections dead-letter records on ``tick_data.dlq``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, TypedDict

from tickflow.dead_letter import raw_text
from tickflow.validity import DlqReason

__all__ = ["DlqReason", "ParseResult", "Rejection", "TradeFields", "raw_text"]


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
