"""``tickflow.micros``: exact conversions between µs since the epoch and UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from tickflow.micros import EPOCH, from_micros, to_micros


@given(st.integers(min_value=-(10**15), max_value=4 * 10**15))
def test_micros_round_trip_exactly(micros: int) -> None:
    assert to_micros(from_micros(micros)) == micros


def test_known_instants() -> None:
    assert from_micros(0) == EPOCH
    assert to_micros(datetime(2023, 9, 5, 16, 0, 1, 281719, tzinfo=UTC)) == 1693929601281719
    assert (
        to_micros(datetime(2023, 9, 5, 18, 0, 1, 281719, tzinfo=timezone(timedelta(hours=2))))
        == 1693929601281719
    )
    assert to_micros(datetime(2023, 9, 5, 16, 0, 1, 281719)) == 1693929601281719  # naive = UTC
