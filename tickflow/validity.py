"""The one definition of a valid tick: dead-letter reason codes and the table of field rules.

Both paths that reject ticks are built from ``FIELD_RULES``: the producer's validator
(``producers.validation``) evaluates each rule's ``accepts`` in Python, the Spark bar job
(``streaming_jobs.bars.parse``) turns each rule into a column expression with ``spark_rejects``. A rule
names a wire field of ``tickflow.schemas.TICK_WIRE_FIELDS``, the check, and the reason reported when it
fails. Rules that need context live beside the table and are named here so that nothing hides:

- ``missing_field``: a field absent, null or an empty string (both paths, before the table);
- ``unknown_symbol`` for a symbol outside the universe (producer: ``Settings.symbols`` /
  ``symbol_pattern``);
- ``clock_skew`` (producer, live ticks: event time further than ``max_clock_skew_s`` from receipt time) and
  ``future_event_time`` (bar job: event time more than ``max_clock_skew_s`` after the Kafka record's
  log-append time, so no record can move the event-time watermark past the present);
- ``duplicate`` (producer: de-duplication window; bar job: within the watermark);
- ``store_rejected`` (bar job: a tick the database refused, e.g. text it cannot store).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from tickflow.schemas import Side, TickSource


class DlqReason(StrEnum):
    """Why input was rejected; the ``reason`` of a dead-letter record and the label of the reject counter.

    Every reason except ``duplicate`` produces a dead-letter record. Duplicates (same exchange, symbol and
    trade id within the de-duplication window) are expected after reconnects and backfills and carry no
    information the topic lacks, so they are dropped and counted — never silently.
    """

    MALFORMED = "malformed"  # not decodable: invalid UTF-8/JSON/CSV, wrong container type, bad exchange
    UNKNOWN_MESSAGE = "unknown_message"  # decodable but not a message type the parser knows
    EXCHANGE_ERROR = "exchange_error"  # an error message sent by the exchange
    MISSING_FIELD = "missing_field"  # a required field is absent or empty
    BAD_PRICE = "bad_price"  # not a finite number > 0
    BAD_SIZE = "bad_size"  # not a finite number > 0
    BAD_SIDE = "bad_side"  # not buy/sell/unknown (or the exchange's code for them)
    BAD_TRADE_ID = "bad_trade_id"  # absent, empty, too long, control characters, not a string/integer
    BAD_TIMESTAMP = "bad_timestamp"  # unparseable, or outside the sane range (before 2000, in the future)
    CLOCK_SKEW = "clock_skew"  # live: event time further than `max_clock_skew_s` from receipt time
    FUTURE_EVENT_TIME = "future_event_time"  # bar job: event time past the Kafka append time + skew
    UNKNOWN_SYMBOL = "unknown_symbol"  # not in the universe, too long, or control characters
    STORE_REJECTED = "store_rejected"  # the database refused the tick
    DUPLICATE = "duplicate"  # seen within the de-duplication window: counted and dropped, no DLQ record


MIN_EVENT_TIME_US: Final = 946_684_800_000_000
"""2000-01-01T00:00:00Z in µs: the earliest accepted event or receipt time."""
MAX_EVENT_TIME_US: Final = 4_102_444_800_000_000
"""2100-01-01T00:00:00Z in µs: the first rejected event or receipt time."""
CONTROL_CHARS: Final = "[\\x00-\\x1f\\x7f]"
"""Regex class of the characters no text field may hold (C0 controls incl. NUL, and DEL): valid JSON,
yet PostgreSQL text cannot hold NUL and logs and terminals misrender the others."""

Check = Literal["text", "positive_finite", "one_of", "time_range"]


@dataclass(frozen=True)
class FieldRule:
    """One check of one wire field; ``reason`` when it fails.

    Checks: ``text`` — at most ``max_chars`` characters and no ``CONTROL_CHARS``; ``positive_finite`` — a
    number > 0 and < inf (NaN fails); ``one_of`` — one of ``allowed``; ``time_range`` — integer µs in
    [``MIN_EVENT_TIME_US``, ``MAX_EVENT_TIME_US``).
    """

    field: str
    check: Check
    reason: DlqReason
    max_chars: int = 0
    allowed: frozenset[str] = frozenset()

    def accepts(self) -> Callable[[object], bool]:
        """A Python predicate: True when a present, non-empty value passes this rule."""
        if self.check == "text":
            limit, control = self.max_chars, re.compile(CONTROL_CHARS).search
            return lambda v: type(v) is str and len(v) <= limit and control(v) is None
        if self.check == "positive_finite":
            return lambda v: type(v) is float and 0.0 < v < math.inf
        if self.check == "one_of":
            allowed = self.allowed
            return lambda v: type(v) is str and v in allowed
        return lambda v: type(v) is int and MIN_EVENT_TIME_US <= v < MAX_EVENT_TIME_US

    def describe(self) -> str:
        """The rule in words, for dead-letter details and the docs."""
        return {
            "text": f"at most {self.max_chars} characters, no control characters",
            "positive_finite": "a finite number > 0",
            "one_of": f"one of {', '.join(sorted(self.allowed))}",
            "time_range": "integer µs in [2000-01-01, 2100-01-01) UTC",
        }[self.check]


FIELD_RULES: Final[tuple[FieldRule, ...]] = (
    FieldRule("exchange", "text", DlqReason.MALFORMED, max_chars=32),
    FieldRule("symbol", "text", DlqReason.UNKNOWN_SYMBOL, max_chars=64),
    FieldRule("raw_symbol", "text", DlqReason.UNKNOWN_SYMBOL, max_chars=64),
    FieldRule("price", "positive_finite", DlqReason.BAD_PRICE),
    FieldRule("size", "positive_finite", DlqReason.BAD_SIZE),
    FieldRule("side", "one_of", DlqReason.BAD_SIDE, allowed=frozenset(s.value for s in Side)),
    FieldRule("trade_id", "text", DlqReason.BAD_TRADE_ID, max_chars=128),
    FieldRule("event_time", "time_range", DlqReason.BAD_TIMESTAMP),
    FieldRule("receipt_time", "time_range", DlqReason.BAD_TIMESTAMP),
    FieldRule("source", "one_of", DlqReason.MALFORMED, allowed=frozenset(s.value for s in TickSource)),
)
"""The field rules of a valid tick, in reporting order (the first failing rule names the reason)."""

TRADE_FIELD_RULES: Final[tuple[FieldRule, ...]] = tuple(
    rule for rule in FIELD_RULES if rule.field not in ("receipt_time", "source")
)
"""The rules of the fields a parser produces (the producer adds ``receipt_time`` and ``source`` itself)."""
