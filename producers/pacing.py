"""Pacing a source to N x real time by its own clock (event or capture time), preserving gaps."""

from __future__ import annotations

import threading
import time


class Pacer:
    """Sleeps so that source time advances ``speed`` times as fast as wall time.

    ``wait(t_us)`` returns once wall time since the first call has reached ``(t_us - first_t_us) / speed``;
    times that go backwards do not wait. ``stop`` cuts a wait short.
    """

    def __init__(self, speed: float, stop: threading.Event | None = None) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self._speed = speed
        self._stop = stop
        self._origin: tuple[int, float] | None = None

    def wait(self, t_us: int) -> None:
        """Block until source time ``t_us`` (µs) is due."""
        if self._origin is None:
            self._origin = (t_us, time.monotonic())
            return
        due = self._origin[1] + (t_us - self._origin[0]) / 1e6 / self._speed
        delay = due - time.monotonic()
        if delay <= 0:
            return
        if self._stop is not None:
            self._stop.wait(delay)
        else:
            time.sleep(delay)
