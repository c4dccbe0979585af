"""The dead-letter record: one shape, written to ``Settings.topic_dlq`` by every stage for rejected input.

Wire format (Kafka value, UTF-8 JSON), version 2::

    {"v": 2, "stage": "producer", "reason": "bad_price", "detail": "bad_price: price=-1.0",
     "raw": "<the input as text>", "raw_truncated": false, "symbol": "BTC-USD",
     "source": "live", "exchange": "coinbase", "received_at": 1693929600130000,
     "topic": null, "partition": null, "offset": null, "timestamp": null}

Every record has ``stage`` (who rejected it: ``producer``, ``bars``, ``indicators``, ``alerting``),
``reason`` (a ``tickflow.validity.DlqReason`` value), ``detail`` and ``raw`` (the input as received, cut to
``MAX_RAW_CHARS`` characters, then ``raw_truncated`` is true). Where the input came from is one of:

- an exchange feed (the producer): ``source`` (a ``TickSource``), ``exchange`` and ``received_at``
  (µs since the epoch, UTC);
- a Kafka record (the stream stages): ``topic``, ``partition``, ``offset`` and ``timestamp`` (the record's
  Kafka time stamp, ISO-8601 UTC).

The Kafka key is the producer's symbol (else the exchange), or the rejected record's own key.

Version 1 had two shapes on the same topic, both still read by :meth:`DeadLetter.from_wire`: the
producer's (no ``stage``: read as ``producer``; no Kafka fields) and the stream side's (no ``source``,
``exchange`` or ``received_at``). A record read from version 1 keeps ``v == 1``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from tickflow.schemas import TickSource
from tickflow.validity import DlqReason

DLQ_SCHEMA_VERSION: Final = 2
MAX_RAW_CHARS: Final = 100_000
PRODUCER_STAGE: Final = "producer"
"""``stage`` of the producer's records (and of every version-1 record without one)."""


def raw_text(raw: str | bytes) -> str:
    """The raw payload as text for a dead-letter record; undecodable bytes are kept as ``\\xNN`` escapes."""
    return raw if isinstance(raw, str) else raw.decode("utf-8", errors="backslashreplace")


class DeadLetter(BaseModel):
    """One dead-letter record (see module docstring).

    Raises ``pydantic.ValidationError`` on construction when it names neither an exchange feed
    (``source`` and ``exchange``) nor a Kafka record (``topic``, ``partition`` and ``offset``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1, 2] = DLQ_SCHEMA_VERSION
    stage: str
    reason: DlqReason
    detail: str
    raw: str
    raw_truncated: bool = False
    symbol: str | None = None
    source: TickSource | None = None
    exchange: str | None = None
    received_at: int | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    timestamp: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _version_1(cls, data: Any) -> Any:
        """A version-1 producer record has no ``stage``: it is the producer's."""
        if isinstance(data, dict) and data.get("v") == 1 and "stage" not in data:
            return {**data, "stage": PRODUCER_STAGE}
        return data

    @model_validator(mode="after")
    def _has_origin(self) -> DeadLetter:
        from_feed = self.source is not None and self.exchange is not None
        from_topic = self.topic is not None and self.partition is not None and self.offset is not None
        if not (from_feed or from_topic):
            raise ValueError("a dead letter names its exchange feed (source, exchange) or its Kafka record")
        return self

    @classmethod
    def of(cls, stage: str, reason: DlqReason | str, detail: str, raw: str, **origin: Any) -> DeadLetter:
        """The record of input ``stage`` rejected, ``raw`` cut to ``MAX_RAW_CHARS``. ``origin``: the exchange
        feed's ``source``, ``exchange``, ``received_at`` (the producer), or the Kafka record's ``topic``,
        ``partition``, ``offset``, ``timestamp`` (the stream stages); ``symbol`` when known.

        Raises:
            pydantic.ValidationError: ``reason`` is not a ``DlqReason`` value, ``origin`` names a field the
                record does not have, or neither a complete feed nor a complete Kafka record.
        """
        cut = {"raw": raw[:MAX_RAW_CHARS], "raw_truncated": len(raw) > MAX_RAW_CHARS}
        return cls(stage=stage, reason=reason, detail=detail, **cut, **origin)

    def key(self) -> bytes | None:
        """The producer's Kafka key: the symbol when known, else the exchange (None for stream records,
        which are keyed like the rejected record)."""
        name = self.symbol or self.exchange
        return name.encode() if name else None

    def to_wire(self) -> bytes:
        """The Kafka value (UTF-8 JSON)."""
        return self.model_dump_json().encode()

    @classmethod
    def from_wire(cls, value: bytes | str) -> DeadLetter:
        """Parse a Kafka value of version 1 (either shape) or 2.

        Raises:
            pydantic.ValidationError: not a dead-letter record.
        """
        return cls.model_validate_json(value)
