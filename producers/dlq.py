"""The dead-letter record written to ``Settings.topic_dlq`` for every rejected input (except duplicates).

Wire format (Kafka value, UTF-8 JSON; key = normalised symbol when known, else the exchange)::

    {"v": 1, "reason": "bad_price", "detail": "bad_price: price=-1.0", "source": "live",
     "exchange": "coinbase", "symbol": "BTC-USD", "raw": "<the raw message as text>",
     "raw_truncated": false, "received_at": 1693929600130000}

``reason`` is a ``producers.trades.DlqReason`` value, ``raw`` the payload as received (a websocket message,
a CSV line, or for generated and REST input the JSON of the trade), cut to ``MAX_RAW_CHARS`` characters
(then ``raw_truncated`` is true), ``received_at`` µs since the epoch, UTC.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict

from producers.trades import DlqReason, Rejection
from tickflow.schemas import TickSource

DLQ_SCHEMA_VERSION: Final = 1
MAX_RAW_CHARS: Final = 100_000


class DeadLetter(BaseModel):
    """One dead-letter record (see module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = DLQ_SCHEMA_VERSION
    reason: DlqReason
    detail: str
    source: TickSource
    exchange: str
    symbol: str | None
    raw: str
    raw_truncated: bool = False
    received_at: int

    @classmethod
    def of(cls, rejection: Rejection, source: TickSource, received_at: int) -> DeadLetter:
        """The record of ``rejection``, with ``raw`` cut to ``MAX_RAW_CHARS``."""
        return cls(
            reason=rejection.reason,
            detail=rejection.detail,
            source=source,
            exchange=rejection.exchange,
            symbol=rejection.symbol,
            raw=rejection.raw[:MAX_RAW_CHARS],
            raw_truncated=len(rejection.raw) > MAX_RAW_CHARS,
            received_at=received_at,
        )

    def key(self) -> bytes:
        """The Kafka key: the symbol when known, else the exchange."""
        return (self.symbol or self.exchange).encode()

    def to_wire(self) -> bytes:
        """The Kafka value (UTF-8 JSON)."""
        return self.model_dump_json().encode()

    @classmethod
    def from_wire(cls, value: bytes | str) -> DeadLetter:
        """Parse a Kafka value. Raises ``pydantic.ValidationError`` when it is not a dead-letter record."""
        return cls.model_validate_json(value)
