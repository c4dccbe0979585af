"""Per-stage latency: the stages of a tick's way, their thresholds, the windowed rule that turns measured
latencies into anomaly episodes, and the collector every measuring process feeds (shared by the producers,
the API and the streaming jobs).

Stages, each measured where it happens (ms; timestamps are UTC, µs from the producers, ms from Kafka):

- ``ingest``: exchange event time -> receipt by the producer (``producers/pipeline.py``), the oldest trade
  of each received batch, per symbol; live and synthetic ticks only (a replay has no live clock);
- ``broker``: receipt -> the broker's append time (the tick topic uses ``LogAppendTime``), measured by the
  API's tick feed (``api/ws/kafka_feed.py``) per record;
- ``fast_path``: the broker's append time -> the WebSocket frame handed to the socket (``api/ws/client.py``,
  after ``send_text`` returned), per unthrottled ``trades`` frame and client; conflated frames of a
  ``throttle_ms`` subscription are delayed on purpose and not measured;
- ``bar_freshness``: a bar's window end -> the revision visible in Redis (bar job), watched from outside
  the bar job by :mod:`streaming_jobs.anomalies.watchdog` (newest tick minus the newest visible revision).

Each is a Prometheus histogram ``tickflow_stage_latency_seconds{stage}`` in the process that measures it and
an InfluxDB point ``latency,stage=<stage>,symbol=<symbol> ms=<p99>,p50_ms,max_ms,count`` per window
(:mod:`tickflow.latency_monitor`; the watchdog writes one ``ms`` point per check).

Rules (thresholds in settings): ingest and fast path the design's 100 ms (``anomaly_ingest_latency_ms``,
``anomaly_fast_path_latency_ms``), broker ``anomaly_broker_latency_ms``; a window's p99 past the threshold
in ``anomaly_latency_breach_windows`` consecutive windows of ``anomaly_latency_window_s`` opens one anomaly
episode per (stage, symbol), as many healthy windows in a row clear it (:class:`StageEpisodes`). Bar
freshness: the trigger interval plus ``anomaly_bar_freshness_margin_s`` (a bar cannot be fresher than one
trigger interval plus its batch), judged by the watchdog. Warm-up: a rule is armed only after its first
healthy window, so a start (the JVM's first batch, a producer's first connection) is no anomaly.
"""

from __future__ import annotations

import math
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
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
    """The rule of every stage, with the thresholds of ``settings``.

    Raises:
        ValueError: ``settings.trigger_interval`` is not a trigger interval.
    """
    trigger_s = interval_seconds(settings.trigger_interval)
    freshness_ms = (trigger_s + settings.anomaly_bar_freshness_margin_s) * 1000
    thresholds = {
        Stage.INGEST: settings.anomaly_ingest_latency_ms,
        Stage.BROKER: settings.anomaly_broker_latency_ms,
        Stage.FAST_PATH: settings.anomaly_fast_path_latency_ms,
        Stage.BAR_FRESHNESS: freshness_ms,
    }
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
        "(Kafka append -> WebSocket send), bar_freshness (newest tick -> newest visible bar revision).",
        ["stage"],
        buckets=LATENCY_BUCKETS_S,
        registry=registry,
    )


_DEFAULT_HISTOGRAM: Histogram | None = None
_DEFAULT_LOCK = threading.Lock()


def default_stage_histogram() -> Histogram:
    """The ``tickflow_stage_latency_seconds`` histogram of the default registry, created on first use (the
    producers and the indicator job's watchdog share it when they live in one process)."""
    global _DEFAULT_HISTOGRAM
    with _DEFAULT_LOCK:
        if _DEFAULT_HISTOGRAM is None:
            _DEFAULT_HISTOGRAM = stage_histogram(REGISTRY)
        return _DEFAULT_HISTOGRAM


MAX_WINDOW_SAMPLES: Final = 100_000
"""Samples kept per (stage, symbol) and window; later ones still reach the histogram and ``count``."""


@dataclass(frozen=True)
class WindowStats:
    """The latencies (ms) of one (stage, symbol) in one window."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def window_stats(samples: list[float], count: int | None = None) -> WindowStats:
    """Nearest-rank p50 and p99 and the maximum (ms) of a non-empty window; ``count`` defaults to the
    number of samples (more when samples past :data:`MAX_WINDOW_SAMPLES` were not kept)."""
    ordered = sorted(samples)

    def rank(q: float) -> float:
        return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]

    return WindowStats(count or len(ordered), rank(0.50), rank(0.99), ordered[-1])


class LatencySamples:
    """What one process measured: each observation goes to the histogram at once and into the current
    window of its (stage, symbol); :meth:`drain` hands the window over (thread-safe: the producers' and the
    API's event loops observe, the monitor thread drains)."""

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._children: dict[str, Histogram] = {}
        self._lock = threading.Lock()
        self._samples: defaultdict[tuple[Stage, str], list[float]] = defaultdict(list)
        self._counts: defaultdict[tuple[Stage, str], int] = defaultdict(int)

    def observe(self, stage: Stage, symbol: str, latency_ms: float) -> None:
        """One measured latency (ms; a negative one, clock skew, counts as 0)."""
        latency_ms = max(latency_ms, 0.0)
        child = self._children.get(stage)
        if child is None:
            child = self._children[stage] = self._histogram.labels(stage.value)
        child.observe(latency_ms / 1000)
        key = (stage, symbol)
        with self._lock:
            self._counts[key] += 1
            window = self._samples[key]
            if len(window) < MAX_WINDOW_SAMPLES:
                window.append(latency_ms)

    def drain(self) -> dict[tuple[Stage, str], WindowStats]:
        """The statistics of the window since the last call, per (stage, symbol); starts a new window."""
        with self._lock:
            samples, self._samples = self._samples, defaultdict(list)
            counts, self._counts = self._counts, defaultdict(int)
        return {key: window_stats(values, counts[key]) for key, values in samples.items() if values}


EpisodeState = Literal["open", "escalated", "cleared"]


@dataclass(frozen=True)
class EpisodeEvent:
    """A change of a (stage, symbol)'s anomaly episode: ``open`` (raised), ``escalated`` (warning to
    critical) or ``cleared``; ``value_ms`` is the window's p99 (the worst p99 of the episode when cleared),
    ``started_at`` the start of the episode's first breaching window (UTC; the anomaly's ``event_time``)."""

    stage: Stage
    symbol: str
    state: EpisodeState
    severity: Severity | Literal["info"]
    value_ms: float
    threshold_ms: float
    started_at: datetime
    at: datetime


@dataclass
class _Track:
    armed: bool = False
    judged: int = 0
    breaches: int = 0
    healthy: int = 0
    first_breach: datetime | None = None
    open_since: datetime | None = None
    severity: Severity | None = None
    worst_ms: float = 0.0


@dataclass
class StageEpisodes:
    """The windowed rule of the ingest, broker and fast-path stages, free of I/O.

    Fed one :class:`WindowStats` per (stage, symbol) and window (:meth:`window`): a window with fewer than
    ``min_samples`` latencies says nothing; else it is a breach when its p99 is past the stage's threshold
    (:meth:`LatencyRule.severity`), healthy otherwise. ``breach_windows`` breaches in a row open one
    episode (severity of the last window's p99; raised to critical once while it lasts, never lowered),
    ``breach_windows`` healthy windows in a row clear it. Warm-up: nothing opens before the (stage, symbol)
    had one healthy window or ``warmup_windows`` judged windows, whichever comes first. So one slow tick,
    one slow batch or a start never alarms, a sustained breach gives one anomaly, not one per tick, and a
    stage past its threshold from its very first window still alarms once its warm-up is over.
    """

    rules: dict[Stage, LatencyRule]
    breach_windows: int
    min_samples: int
    warmup_windows: int
    tracks: dict[tuple[Stage, str], _Track] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> StageEpisodes:
        """The rule of ``settings`` (thresholds, ``anomaly_latency_breach_windows``, ``..._min_samples``,
        ``anomaly_latency_warmup_s`` in whole windows of ``anomaly_latency_window_s``)."""
        return cls(
            latency_rules(settings),
            settings.anomaly_latency_breach_windows,
            settings.anomaly_latency_min_samples,
            math.ceil(settings.anomaly_latency_warmup_s / settings.anomaly_latency_window_s),
        )

    def armed(self, stage: Stage, symbol: str) -> bool:
        """True once (stage, symbol) had a healthy window or ``warmup_windows`` judged windows."""
        track = self.tracks.get((stage, symbol))
        return track is not None and track.armed

    def window(
        self, stage: Stage, symbol: str, stats: WindowStats, started_at: datetime, at: datetime
    ) -> EpisodeEvent | None:
        """Judge one window (``started_at``: its start, ``at``: its end, UTC); the episode change, if any."""
        if stats.count < self.min_samples:
            return None
        rule = self.rules[stage]
        track = self.tracks.setdefault((stage, symbol), _Track())
        severity = rule.severity(stats.p99_ms)
        track.judged += 1
        if track.judged > self.warmup_windows:
            track.armed = True
        if severity is None:
            track.armed = True
            track.breaches, track.first_breach = 0, None
            if track.open_since is None:
                return None
            track.healthy += 1
            if track.healthy < self.breach_windows:
                return None
            event = EpisodeEvent(
                stage, symbol, "cleared", "info", track.worst_ms, rule.threshold_ms, track.open_since, at
            )
            track.open_since, track.severity, track.worst_ms, track.healthy = None, None, 0.0, 0
            return event
        track.healthy = 0
        if not track.armed:
            return None
        if track.open_since is not None:
            track.worst_ms = max(track.worst_ms, stats.p99_ms)
            if severity == "critical" and track.severity != "critical":
                track.severity = severity
                return EpisodeEvent(
                    stage,
                    symbol,
                    "escalated",
                    severity,
                    stats.p99_ms,
                    rule.threshold_ms,
                    track.open_since,
                    at,
                )
            return None
        track.breaches += 1
        if track.first_breach is None:
            track.first_breach = started_at
        if track.breaches < self.breach_windows:
            return None
        track.open_since, track.severity, track.worst_ms = track.first_breach, severity, stats.p99_ms
        track.breaches, track.first_breach = 0, None
        return EpisodeEvent(
            stage, symbol, "open", severity, stats.p99_ms, rule.threshold_ms, track.open_since, at
        )
