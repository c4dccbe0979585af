"""The watermark tracker (bars/finality.py): Spark's watermark arithmetic, without Spark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streaming_jobs.bars.finality import WatermarkTracker, delay_ms

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2 minutes", 120_000),
        ("1 minute 30 seconds", 90_000),
        ("INTERVAL 10 seconds", 10_000),
        ("500 milliseconds", 500),
        ("1 hour", 3_600_000),
        ("1 week", 604_800_000),
    ],
)
def test_delay_thresholds_are_read_as_spark_reads_them(text: str, ms: int) -> None:
    assert delay_ms(text) == ms


@pytest.mark.parametrize("text", ["", "2", "two minutes", "2 fortnights", "2 minutes and more"])
def test_an_unreadable_delay_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="cannot read watermark delay"):
        delay_ms(text)


def test_no_watermark_and_nothing_final_before_the_first_tick() -> None:
    tracker = WatermarkTracker(delay_ms=120_000)
    tracker.observe(None)
    assert tracker.watermark is None
    assert not tracker.is_final(datetime(2000, 1, 1, tzinfo=UTC))


def test_watermark_is_the_floored_max_event_time_minus_the_delay_and_never_goes_back() -> None:
    tracker = WatermarkTracker(delay_ms=120_000)
    tracker.observe(T0 + timedelta(minutes=3, microseconds=999))  # floored to the millisecond
    assert tracker.watermark == T0 + timedelta(minutes=1)
    tracker.observe(T0)  # an older batch maximum does not move it back
    assert tracker.watermark == T0 + timedelta(minutes=1)
    tracker.observe(T0 + timedelta(minutes=5, seconds=30))
    assert tracker.watermark == T0 + timedelta(minutes=3, seconds=30)


def test_a_bar_is_final_once_the_watermark_reaches_its_window_end() -> None:
    tracker = WatermarkTracker(delay_ms=120_000)
    tracker.observe(T0 + timedelta(minutes=3))  # watermark T0 + 1 min
    assert tracker.is_final(T0 + timedelta(minutes=1))  # window_end == watermark: final
    assert not tracker.is_final(T0 + timedelta(minutes=1, microseconds=1))
    assert not tracker.is_final(T0 + timedelta(minutes=2))
