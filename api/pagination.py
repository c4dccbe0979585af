"""Time-range windows, opaque time cursors, and merging a cached latest row into a page.

Every list endpoint orders rows by a key whose first column is a time (``window_start``, ``event_time``)
followed by tie-breakers (``exchange, trade_id`` for ticks), so a cursor is the key of the last row of a
page: the next page starts strictly after it. The cursor is that key as URL-safe base64 of a JSON list
(``[iso_time, *strings]``); clients treat it as opaque.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

Key = tuple[Any, ...]
Row = dict[str, Any]


class Order(StrEnum):
    """Direction of a page: oldest first (``asc``) or newest first (``desc``)."""

    ASC = "asc"
    DESC = "desc"


class InvalidCursorError(ValueError):
    """The cursor is not one this API produced for this endpoint."""


def to_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is taken to be UTC.

    Raises:
        OverflowError: the instant is outside the years 1..9999 in UTC.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def encode_cursor(key: Key) -> str:
    """Cursor of a row key ``(time, *strings)``."""
    payload = [key[0].isoformat(), *(str(part) for part in key[1:])]
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def decode_cursor(text: str) -> Key:
    """Row key of a cursor.

    Raises:
        InvalidCursorError: not base64 of a JSON list starting with an ISO time and followed by strings.
    """
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not (isinstance(payload, list) and payload and all(isinstance(p, str) for p in payload)):
            raise InvalidCursorError("cursor is not a list of strings")
        return (to_utc(datetime.fromisoformat(payload[0])), *payload[1:])
    except (binascii.Error, orjson.JSONDecodeError, ValueError, OverflowError) as exc:
        raise InvalidCursorError(f"invalid cursor: {exc}") from exc


@dataclass(frozen=True)
class Window:
    """A page request: rows with ``start <= time < end`` after ``cursor`` in ``order``, at most ``limit``."""

    start: datetime | None
    end: datetime | None
    limit: int
    order: Order = Order.ASC
    cursor: Key | None = None

    def contains(self, key: Key) -> bool:
        """True when a row with ``key`` belongs to this window (time range and after the cursor)."""
        time = key[0]
        if (self.start is not None and time < self.start) or (self.end is not None and time >= self.end):
            return False
        if self.cursor is None:
            return True
        return key > self.cursor if self.order is Order.ASC else key < self.cursor


def row_key(row: Row, key_columns: Sequence[str]) -> Key:
    """The ordering key of ``row``."""
    return tuple(row[column] for column in key_columns)


def merge_cached(
    rows: list[Row], has_more: bool, cached: Row | None, key_columns: Sequence[str], window: Window
) -> tuple[list[Row], bool]:
    """Merge the cached latest row (from Redis) into a page read from PostgreSQL.

    The cached row replaces the stored row with the same key unless the stored one has a strictly newer
    ``updated_at``; a row missing from PostgreSQL is added when it falls inside this page. Returns the
    merged rows (at most ``window.limit``) and whether more rows follow.
    """
    if cached is None:
        return rows, has_more
    key = row_key(cached, key_columns)
    if not window.contains(key):
        return rows, has_more
    for index, row in enumerate(rows):
        if row_key(row, key_columns) == key:
            stored, fresh = row.get("updated_at"), cached.get("updated_at")
            if not (stored is not None and fresh is not None and stored > fresh):
                rows[index] = cached
            return rows, has_more
    descending = window.order is Order.DESC
    if has_more:
        last = row_key(rows[-1], key_columns)
        if (key > last) != descending:  # beyond this page: a later page will get it
            return rows, has_more
    merged = sorted([*rows, cached], key=lambda r: row_key(r, key_columns), reverse=descending)
    if len(merged) > window.limit:
        return merged[: window.limit], True
    return merged, has_more


def next_cursor(rows: list[Row], has_more: bool, key_columns: Sequence[str]) -> str | None:
    """Cursor after the last row, or None on the last page."""
    return encode_cursor(row_key(rows[-1], key_columns)) if has_more and rows else None
