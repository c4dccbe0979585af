"""Per-stage latency: the stages of a tick's way, their thresholds and the rule that turns a measured
latency into an anomaly severity (shared by the producers, the API and the streaming jobs).

Stages, each measured where it happens:

- ``ingest``: exchange event time -> receipt by the producer (``producers/``); rule: breaches counted;
- ``broker``: receipt -> the broker's append time (the tick topic uses ``LogAppendTime``; measured by the
  API's tick feed); measured, no rule;
- ``fast_path``: the broker's append time -> queued for the WebSocket send (``api/ws/hub.py``); measured,
  no rule;
- ``bar_freshness``: a bar's window end -> the revision visible in Redis (bar job), watched from outside
  the bar job by :mod:`streaming_jobs.anomalies.watchdog`; rule: the ``bar_freshness`` anomaly.

Thresholds: ``anomaly_ingest_latency_ms`` (the design's 100 ms) and for bar freshness the trigger interval
plus ``anomaly_bar_freshness_margin_s`` (a bar cannot be fresher than one trigger interval plus its batch).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from tickflow.settings import Settings

Severity = Literal["warning", "critical"]

LATENCY_MEASUREMENT: Final = "latency"
"""InfluxDB measurement of per-stage latencies (tag ``stage``, field ``ms``)."""
LATENCY_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
"""Prometheus histogram buckets (s) of the per-stage latency histograms."""


class Stage(StrEnum):
    """A stage of a tick's way through the pipeline."""

    INGEST = "ingest"
    BROKER = "broker"
    FAST_PATH = "fast_path"
    BAR_FRESHNESS = "bar_freshness"


_UNITS_S: Final = {"ms": 0.001, "millisecond": 0.001, "s": 1.0, "second": 1.0, "minute": 60.0, "hour": 3600.0}


def interval_seconds(text: str) -> float:
    """Seconds of a Spark trigger interval such as ``"1 second"``, ``"500 milliseconds"``, ``"2 minutes"``.

    Raises:
        ValueError: not ``<number> <unit>`` with a unit of ms/milliseconds/s/seconds/minutes/hours.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*", text.lower())
    unit = match.group(2) if match else ""
    unit = unit if unit in _UNITS_S else unit.removesuffix("s")
    if match is None or unit not in _UNITS_S:
        raise ValueError(f"not a trigger interval: {text!r}")
    return float(match.group(1)) * _UNITS_S[unit]


@dataclass(frozen=True)
class LatencyRule:
    """A stage's threshold: a latency strictly above ``threshold_ms`` is a ``warning`` anomaly, one at least
    ``critical_ratio`` times the threshold a ``critical`` one."""

    stage: Stage
    threshold_ms: float
    critical_ratio: float

    def severity(self, latency_ms: float) -> Severity | None:
        """The severity of a measured latency (ms); None when within the threshold or not a number."""
        if not latency_ms > self.threshold_ms:  # NaN never fires
            return None
        return "critical" if latency_ms >= self.critical_ratio * self.threshold_ms else "warning"


def latency_rules(settings: Settings) -> dict[Stage, LatencyRule]:
    """The rules of the stages that have one (ingest, bar freshness), with the thresholds of ``settings``.

    Raises:
        ValueError: ``settings.trigger_interval`` is not a trigger interval.
    """
    trigger_s = interval_seconds(settings.trigger_interval)
    freshness_ms = (trigger_s + settings.anomaly_bar_freshness_margin_s) * 1000
    thresholds = {Stage.INGEST: settings.anomaly_ingest_latency_ms, Stage.BAR_FRESHNESS: freshness_ms}
    return {
        stage: LatencyRule(stage, threshold, settings.anomaly_critical_ratio)
        for stage, threshold in thresholds.items()
    }


def stage_histogram(registry: CollectorRegistry = REGISTRY) -> Histogram:
    """The ``tickflow_stage_latency_seconds{stage}`` histogram in ``registry`` (create it once per registry:
    each process exports the stages it measures)."""
    return Histogram(
        "tickflow_stage_latency_seconds",
        "Per-stage latency (s): ingest (event time -> receipt), broker (receipt -> Kafka append), fast_path "
        "(Kafka append -> queued for the WebSocket send).",
        ["stage"],
        buckets=LATENCY_BUCKETS_S,
        registry=registry,
    )
