"""Opaque cursors (api/pagination.py): round trip, and every malformed cursor is a clean 400 cause."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from api.pagination import InvalidCursorError, Order, Window, decode_cursor, encode_cursor

T = datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def raw(payload: object) -> str:
    """A cursor of any JSON ``payload``, encoded as the API encodes its own."""
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


@pytest.mark.parametrize("key", [(T,), (T, "coinbase", "5512345"), (T, "")])
def test_a_cursor_decodes_to_the_key_it_was_made_of(key: tuple[object, ...]) -> None:
    cursor = encode_cursor(key)
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor  # URL-safe, unpadded
    assert decode_cursor(cursor) == key


def test_times_are_decoded_to_utc_and_a_naive_time_is_taken_as_utc() -> None:
    other_zone = T.astimezone(timezone(timedelta(hours=2)))
    assert decode_cursor(raw([other_zone.isoformat()])) == (T,)
    assert decode_cursor(raw([T.replace(tzinfo=None).isoformat()])) == (T,)
    assert decode_cursor(raw([T.isoformat()]))[0].tzinfo is UTC


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",  # not base64
        "YQ",  # base64 of "a": not JSON
        raw({"t": T.isoformat()}),  # not a list
        raw([]),  # empty
        raw([T.isoformat(), 5]),  # not all strings
        raw(["yesterday"]),  # not an ISO time
        raw(["9999-12-31T23:59:59-05:00"]),  # past year 9999 in UTC
    ],
)
def test_a_malformed_cursor_raises_invalid_cursor(cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor)


def test_the_next_page_starts_strictly_after_the_cursor_in_either_order() -> None:
    later = (T + timedelta(microseconds=1),)
    asc = Window(start=None, end=None, limit=10, order=Order.ASC, cursor=(T,))
    desc = Window(start=None, end=None, limit=10, order=Order.DESC, cursor=(T,))
    assert asc.contains(later) and not asc.contains((T,))
    assert desc.contains((T - timedelta(microseconds=1),)) and not desc.contains((T,))
    bounded = Window(start=T, end=T + timedelta(minutes=1), limit=10)
    assert bounded.contains((T,)) and not bounded.contains((T + timedelta(minutes=1),))  # [start, end)
