"""Bar intervals: one spelling (``1m``, ``5m``, ``15m``, ``1h``, ``1d``) for the API, tables, Redis keys and
Kafka topic names (``bars_1m``); Spark durations (``1 minute``) are derived."""

from __future__ import annotations

from dataclasses import dataclass

_MINUTES = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "4h": 240, "1d": 1440}


@dataclass(frozen=True, order=True)
class Interval:
    """A tumbling bar interval of a whole number of minutes.

    Windows are aligned to the Unix epoch (UTC) and half-open: a tick at ``t`` belongs to the bar with
    ``window_start <= t < window_end``.
    """

    minutes: int

    @classmethod
    def parse(cls, name: str) -> Interval:
        """``"1m"``, ``"5m"``, ``"15m"``, ``"1h"``... or the legacy topic form ``"5min"`` (read when
        migrating ``aggregated_data_5min`` topic names).

        Raises:
            ValueError: for an unknown interval name.
        """
        key = name.strip().lower().removesuffix("in")  # "5min" -> "5m"
        if key not in _MINUTES:
            raise ValueError(f"unknown interval {name!r}; expected one of {', '.join(_MINUTES)}")
        return cls(_MINUTES[key])

    @property
    def name(self) -> str:
        """API / database name: ``1m``, ``5m``, ``15m``, ``1h``."""
        for name, minutes in _MINUTES.items():
            if minutes == self.minutes:
                return name
        return f"{self.minutes}m"

    @property
    def topic_suffix(self) -> str:
        """Kafka topic suffix: the name, ``1m``, ``5m``, ``15m``, ``1h``."""
        return self.name

    @property
    def legacy_topic_suffix(self) -> str:
        """Suffix of the bar topics before the one bar vocabulary: ``1min``, ``60min``."""
        return f"{self.minutes}min"

    @property
    def micros(self) -> int:
        """Length in microseconds."""
        return self.minutes * 60_000_000

    def __str__(self) -> str:
        return self.name
