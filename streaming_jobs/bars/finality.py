"""When a bar is final: the sink's copy of Spark's event-time watermark.

Spark computes the watermark of micro-batch N+1 as ``max(W_N, floor_ms(max event time up to batch N) -
delay)`` and drops, for every later batch, ticks whose window ends at or before it. So once batch N is
written, every bar with ``window_end <= W_{N+1}`` can never change again: it is final. The tracker follows
the same arithmetic from the bars the batches emit (their ``last_trade_time`` maxima are the batches'
event-time maxima: a tick that is dropped as late lies below the watermark and cannot raise it).

After a process restart the tracker starts empty and catches up with the first batch; until a batch raises
the maximum past the previous run's, bars may be marked final later than they could be, never too early.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from tickflow.micros import from_micros, to_micros

_UNIT_MS: Final = {
    "millisecond": 1,
    "second": 1000,
    "minute": 60_000,
    "hour": 3_600_000,
    "day": 86_400_000,
    "week": 7 * 86_400_000,
}
_PART = re.compile(r"(\d+)\s*(millisecond|second|minute|hour|day|week)s?", re.IGNORECASE)


def delay_ms(text: str) -> int:
    """Milliseconds of a Spark delay threshold such as ``"2 minutes"`` or ``"1 minute 30 seconds"``.

    Raises:
        ValueError: not a sum of ``<integer> <unit>`` parts (units millisecond ... week).
    """
    body = text.strip().lower().removeprefix("interval").strip()
    parts = _PART.findall(body)
    if not parts or _PART.sub("", body).strip():
        raise ValueError(f"cannot read watermark delay {text!r}; expected e.g. '2 minutes'")
    return sum(int(number) * _UNIT_MS[unit.lower()] for number, unit in parts)


@dataclass
class WatermarkTracker:
    """Follows the watermark Spark will use for the next micro-batch."""

    delay_ms: int
    max_event_time: datetime | None = None

    def observe(self, event_time: datetime | None) -> None:
        """Account for a batch whose latest tick happened at ``event_time`` (``None``: no ticks)."""
        if event_time is not None and (self.max_event_time is None or event_time > self.max_event_time):
            self.max_event_time = event_time

    @property
    def watermark(self) -> datetime | None:
        """``floor_ms(max event time) - delay`` (UTC), ``None`` before the first tick."""
        if self.max_event_time is None:
            return None
        millis = to_micros(self.max_event_time) // 1000
        return from_micros((millis - self.delay_ms) * 1000)

    def is_final(self, window_end: datetime) -> bool:
        """True when a bar ending at ``window_end`` can no longer be revised."""
        watermark = self.watermark
        return watermark is not None and window_end <= watermark
