"""Time as integer microseconds since the Unix epoch (UTC), the unit of every time stamp on the wire.

``to_micros``/``from_micros`` convert exactly (integer arithmetic, no float rounding): for every aware
``datetime`` ``d`` with whole microseconds, ``from_micros(to_micros(d)) == d``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
"""1970-01-01T00:00:00Z, the zero of every µs time stamp."""
_ONE_US: Final = timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    """``micros`` µs since the epoch as an aware UTC ``datetime``.

    Raises:
        OverflowError: outside ``datetime``'s range (years 1..9999).
    """
    return EPOCH + timedelta(microseconds=int(micros))


def to_micros(moment: datetime) -> int:
    """An aware ``datetime`` (a naive one is taken as UTC) as integer µs since the epoch.

    Raises:
        OverflowError: the difference to the epoch does not fit a ``timedelta``.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // _ONE_US
