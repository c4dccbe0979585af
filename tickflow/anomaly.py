"""The anomaly record (a cross-stage contract): one row of the ``anomalies`` table and the JSON on the
``anomalies`` topic, written by the indicator job and the producers, read by alerting, the API and the
dashboard."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field


class AnomalyType(StrEnum):
    """What was detected."""

    PRICE_SPIKE = "price_spike"  # a trade (bar high/low) far from the previous bar's close
    VOLUME_SPIKE = "volume_spike"  # bar volume a multiple of the rolling mean volume
    RSI_EXTREME = "rsi_extreme"  # RSI 14 overbought or oversold
    PIPELINE_LATENCY = "pipeline_latency"  # no longer raised (per-stage types instead); old rows parse
    BAR_FRESHNESS = "bar_freshness"  # no fresh bar while ticks arrive (the indicator job's watchdog)
    INGEST_LATENCY = "ingest_latency"  # p99 event time -> receipt past its threshold (producers)
    BROKER_LATENCY = "broker_latency"  # p99 receipt -> Kafka append past its threshold (API tick feed)
    FAST_PATH_LATENCY = "fast_path_latency"  # p99 Kafka append -> WebSocket send past its threshold (API)
    RETURN_ZSCORE = "return_zscore"  # bar return far outside the rolling distribution of returns
    FEED_FAILOVER = "feed_failover"  # the producer switched a symbol's provider (published by producers)


class Severity(StrEnum):
    """How urgent an anomaly is; ordered ``info < warning < critical``."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for critical."""
        return list(Severity).index(self)


class Anomaly(BaseModel):
    """One detected anomaly.

    ``value`` and ``threshold`` share the unit of the rule: percent (price spike), multiple of the mean
    volume (volume spike), RSI points, milliseconds (latency, bar freshness), standard deviations (z-score).
    ``event_time`` is the start of the bar the anomaly belongs to (UTC, µs). The key
    ``(anomaly_type, symbol, interval, event_time)`` identifies it: a revised bar revises its anomaly.
    """

    model_config = ConfigDict(frozen=True)

    anomaly_type: AnomalyType
    severity: Severity
    symbol: str
    interval: str
    event_time: datetime
    value: float = Field(allow_inf_nan=False)
    threshold: float = Field(allow_inf_nan=False)
    details: dict[str, Any] = Field(default_factory=dict)
    detected_at: datetime

    @property
    def key(self) -> tuple[str, str, str, datetime]:
        """``(anomaly_type, symbol, interval, event_time)``, the primary key of the ``anomalies`` table."""
        return (self.anomaly_type.value, self.symbol, self.interval, self.event_time)

    def to_json(self) -> bytes:
        """UTF-8 JSON with ISO-8601 UTC timestamps."""
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, value: bytes | str) -> Anomaly:
        """Parse :meth:`to_json` output.

        Raises:
            pydantic.ValidationError: malformed JSON or a missing/invalid field.
        """
        return cls.model_validate_json(value)
