"""The one dead-letter record (``tickflow.dead_letter``): version 2 from both sides, and both version-1
shapes still read."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pydantic
import pytest

from tickflow.dead_letter import MAX_RAW_CHARS, PRODUCER_STAGE, DeadLetter
from tickflow.schemas import TickSource
from tickflow.validity import DlqReason

STAMP = datetime(2023, 9, 5, 16, 0, 1, 281719, tzinfo=UTC)
V1_PRODUCER = {
    "v": 1,
    "reason": "bad_price",
    "detail": "bad_price: price=-1.0",
    "source": "live",
    "exchange": "coinbase",
    "symbol": "BTC-USD",
    "raw": '{"price": "-1"}',
    "raw_truncated": False,
    "received_at": 1693929600130000,
}
"""What ``producers/dlq.py`` wrote before version 2."""
V1_STREAM = {
    "v": 1,
    "stage": "bars",
    "reason": "bad_trade_id",
    "detail": "trade_id is empty",
    "raw": '{"trade_id": ""}',
    "raw_truncated": False,
    "topic": "tick_data",
    "partition": 3,
    "offset": 41,
    "timestamp": "2023-09-05T16:00:01.281719+00:00",
}
"""What the bar job's ``tick_store.dead_letter`` (and the indicator job, alerting) wrote before version 2."""


def test_a_producer_record_round_trips_as_version_2() -> None:
    letter = DeadLetter.of(
        PRODUCER_STAGE,
        DlqReason.BAD_PRICE,
        "bad_price: price=-1.0",
        "x" * (MAX_RAW_CHARS + 5),
        source=TickSource.LIVE,
        exchange="coinbase",
        symbol=None,
        received_at=1693929600130000,
    )
    wire = orjson.loads(letter.to_wire())
    assert (wire["v"], wire["stage"], wire["raw_truncated"], len(wire["raw"])) == (
        2,
        "producer",
        True,
        MAX_RAW_CHARS,
    )
    assert wire["topic"] is None and letter.key() == b"coinbase"
    assert DeadLetter.from_wire(letter.to_wire()) == letter


def test_a_stream_record_round_trips_as_version_2() -> None:
    letter = DeadLetter.of(
        "indicators",
        "malformed",
        "unknown interval",
        "{}",
        topic="bars_1m",
        partition=0,
        offset=7,
        timestamp=STAMP,
    )
    assert letter.v == 2 and letter.reason is DlqReason.MALFORMED and letter.source is None
    assert letter.key() is None
    assert DeadLetter.from_wire(letter.to_wire()) == letter


def test_both_version_1_shapes_are_read() -> None:
    producer = DeadLetter.from_wire(orjson.dumps(V1_PRODUCER))
    assert (producer.v, producer.stage, producer.exchange, producer.received_at) == (
        1,
        PRODUCER_STAGE,
        "coinbase",
        1693929600130000,
    )
    assert producer.key() == b"BTC-USD"
    stream = DeadLetter.from_wire(orjson.dumps(V1_STREAM))
    assert (stream.v, stream.stage, stream.topic, stream.offset, stream.timestamp) == (
        1,
        "bars",
        "tick_data",
        41,
        STAMP,
    )


@pytest.mark.parametrize(
    "value",
    [
        {**V1_STREAM, "v": 3},  # an unknown version
        {k: v for k, v in V1_STREAM.items() if k != "offset"},  # names no complete origin
        {**V1_PRODUCER, "reason": "no_such_reason"},
        {**V1_PRODUCER, "colour": "red"},  # an unknown field
    ],
)
def test_what_is_not_a_dead_letter_is_refused(value: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        DeadLetter.from_wire(orjson.dumps(value))
