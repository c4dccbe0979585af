"""The pipeline-health panel: ingest rate, bar freshness, end-to-end and per-stage latency, consumer lag and
API readiness.

Figures come from the services' Prometheus endpoints (``dashboard.source.metrics_urls``) and from the
newest bar the API serves. A metric that no reachable endpoint exports shows as unknown with the reason,
never as zero. Counter rates are differences between two scrapes of this dashboard process.

Metrics read (see ``producers/metrics.py``, ``streaming_jobs/bars/metrics.py``, ``api/metrics.py``):

- ingest rate: ``tickflow_producer_ticks_out_total`` (validated ticks handed to Kafka), else the API's
  fast-path ``tickflow_api_ticks_consumed_total``; ticks per second.
- bar freshness: ``tickflow_bars_freshness_seconds`` (window end until the revision is in Redis), mean of
  the observations between two scrapes (since the bars job started when there were none).
- consumer lag: ``tickflow_bars_consumer_lag_records{query, topic}`` (Spark queries, from their progress) and
  ``tickflow_consumer_group_lag_records{group, topic}`` (consumer groups; ``streaming_jobs/lag.py``), records,
  the total and each reader.
- stage latency: ``tickflow_stage_latency_seconds{stage}`` (ingest, broker, fast path; mean between two
  scrapes) and the bar-freshness watchdog's ``tickflow_bar_freshness_lag_seconds``.
- prediction: what `tickflow ml serve` does for the chart's series (``/api/v1/ml/status``): waiting for N
  more final bars, training, or predicting every final bar with a model version and the live walk-forward
  score of its served predictions (RMSE vs the naive forecast, band coverage vs its nominal level).
- end-to-end latency: newest bar's ``updated_at - last_trade_time`` (its latest trade's event time until
  the revision was stored), and the last bar update: ``now - updated_at``, both from the API.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

from dashboard.http_cache import FetchError
from dashboard.source import TickflowApi
from dashboard.view import prediction_summary
from tickflow.intervals import Interval

Level = Literal["ok", "warn", "bad", "unknown"]

INGEST_COUNTERS: Final = (
    ("tickflow_producer_ticks_out_total", "producer"),
    ("tickflow_api_ticks_consumed_total", "API tick feed"),
)
FRESHNESS: Final = "tickflow_bars_freshness_seconds"
LAG_GAUGES: Final = ("tickflow_bars_consumer_lag_records", "tickflow_consumer_group_lag_records")
STAGE_LATENCY: Final = "tickflow_stage_latency_seconds"
STAGES: Final = (("ingest", "ingest"), ("broker", "broker"), ("fast_path", "fast path"))
WATCHDOG_LAG: Final = "tickflow_bar_freshness_lag_seconds"


@dataclass(frozen=True)
class Card:
    """One figure of the panel: a title, a formatted value, a detail line and a traffic-light level."""

    title: str
    value: str
    detail: str
    level: Level


Samples = dict[str, float]
"""Sample name (with labels as ``name{k="v"}`` for labelled ones, and also summed under the bare name) ->
value."""


def parse_metrics(texts: Iterable[str]) -> Samples:
    """Samples of Prometheus text expositions: each sample under ``name{labels}`` and summed under ``name``.

    Unparsable text is skipped (an endpoint that answers something else is treated as absent).
    """
    samples: Samples = {}
    for text in texts:
        try:
            families = list(text_string_to_metric_families(text))
        except (ValueError, TypeError):
            continue
        for family in families:
            for sample in family.samples:
                samples[sample.name] = samples.get(sample.name, 0.0) + sample.value
                if sample.labels:
                    labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                    samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def format_duration(seconds: float) -> str:
    """``850 ms``, ``4.2 s``, ``3.0 min``, ``5.1 h``, ``731 d``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size * (1 if unit == "min" else 2):
            return f"{seconds / size:.0f} {unit}" if seconds >= 100 * size else f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _level(value: float, warn: float, bad: float) -> Level:
    return "ok" if value < warn else "warn" if value < bad else "bad"


class _Deltas:
    """Differences of cumulative samples between the two latest scrapes (thread-safe)."""

    def __init__(self) -> None:
        self._previous: tuple[float, Samples] | None = None
        self._current: tuple[float, Samples] | None = None
        self._lock = threading.Lock()

    def update(self, at: float, samples: Samples) -> None:
        with self._lock:
            if self._current is not None and at - self._current[0] < 0.5:
                return  # the same (cached) responses, or too close to the last scrape to give a rate
            self._previous, self._current = self._current, (at, samples)

    def delta(self, name: str) -> tuple[float, float] | None:
        """(value change, seconds between scrapes) of ``name``; None before two scrapes have it."""
        with self._lock:
            if self._previous is None or self._current is None:
                return None
            (t0, before), (t1, after) = self._previous, self._current
        if name not in before or name not in after:
            return None
        change = after[name] - before[name]
        return (after[name], t1 - t0) if change < 0 else (change, t1 - t0)  # a counter reset: count anew


class HealthMonitor:
    """Builds the panel's cards; one per dashboard process (it remembers the previous scrape)."""

    def __init__(self, api: TickflowApi, metrics_urls: list[str]) -> None:
        self.api = api
        self.metrics_urls = metrics_urls
        self._deltas = _Deltas()

    def scrape(self) -> tuple[Samples, list[str]]:
        """Samples of every reachable endpoint, and the URLs that could not be read."""
        texts, unreachable, received = [], [], 0.0
        for url in self.metrics_urls:
            try:
                fetched = self.api.metrics(url)
            except FetchError:
                unreachable.append(url)
                continue
            if fetched.stale:
                unreachable.append(url)
            else:
                texts.append(fetched.data)
                received = max(received, fetched.fetched_at)
        samples = parse_metrics(texts)
        self._deltas.update(received, samples)
        return samples, unreachable

    def cards(
        self,
        newest_bar: pd.Series | None,
        interval: str,
        now: datetime | None = None,
        symbol: str | None = None,
    ) -> list[Card]:
        """Every card, for the chart's interval and its newest bar (a ``bars_frame`` row, None: no bars);
        with ``symbol``, also what the prediction service does for the chart's series."""
        samples, unreachable = self.scrape()
        note = f"unreachable: {', '.join(unreachable)}" if unreachable else "not exported"
        return [
            self._ready_card(),
            *([self._prediction_card(symbol, interval)] if symbol else []),
            self._ingest_card(samples, note),
            self._freshness_card(samples, interval, note),
            *latency_cards(newest_bar, interval, now or datetime.now(UTC)),
            self._stage_card(samples, note),
            lag_card(samples, note),
        ]

    def _stage_card(self, samples: Samples, note: str) -> Card:
        """Mean latency per stage between the last two scrapes (else since start), worst level wins."""
        parts, levels = [], []
        for stage, label in STAGES:
            total, count = (
                f'{STAGE_LATENCY}_sum{{stage="{stage}"}}',
                f'{STAGE_LATENCY}_count{{stage="{stage}"}}',
            )
            if not samples.get(count):
                continue
            sums, counts = self._deltas.delta(total), self._deltas.delta(count)
            if sums and counts and counts[0] > 0:
                mean = sums[0] / counts[0]
            else:
                mean = samples[total] / samples[count]
            parts.append(f"{label} {format_duration(mean)}")
            levels.append(_level(mean, 0.1, 1.0))
        if WATCHDOG_LAG in samples:
            parts.append(f"bars {format_duration(samples[WATCHDOG_LAG])} behind ticks")
            levels.append(_level(samples[WATCHDOG_LAG], 5.0, 10.0))
        if not parts:
            return Card("Stage latency", "n/a", f"stage latency {note}", "unknown")
        worst = max(levels, key=["ok", "warn", "bad"].index)
        return Card("Stage latency", parts[0], " · ".join(parts), worst)

    def _ready_card(self) -> Card:
        try:
            fetched = self.api.ready()
        except FetchError as exc:
            return Card("API", "down", exc.detail, "bad")
        if fetched.stale:
            return Card("API", "down", fetched.error or "", "bad")
        checks: Mapping[str, Mapping[str, object]] = fetched.data.get("checks", {})
        failing = [name for name, check in checks.items() if not check.get("ok")]
        if failing:
            return Card("API", "degraded", "failing: " + ", ".join(failing), "warn")
        return Card("API", "ready", " · ".join(f"{name} ok" for name in checks), "ok")

    def _prediction_card(self, symbol: str, interval: str) -> Card:
        """The prediction service's state for ``symbol``/``interval`` (``/api/v1/ml/status``)."""
        try:
            fetched = self.api.ml_status()
        except FetchError as exc:
            return Card("Prediction", "n/a", f"status unavailable: {exc.detail}", "unknown")
        if not fetched.data.get("running"):
            return Card("Prediction", "not running", "no status from `tickflow ml serve`", "unknown")
        wanted = (symbol, Interval.parse(interval).name)
        series = [s for s in fetched.data.get("series", []) if (s["symbol"], s["interval"]) == wanted]
        if not series:
            return Card("Prediction", "no model", f"{symbol} {interval} has no final bars yet", "unknown")
        status = series[0]
        if status["state"] == "waiting":
            missing = status.get("missing_bars")
            more = f"{missing} more final bars" if missing is not None else "more final bars"
            return Card("Prediction", "waiting", f"for {more} to train", "warn")
        if status["state"] == "training":
            return Card("Prediction", "training", f"{symbol} {interval}", "warn")
        return Card("Prediction", "every final bar", prediction_summary(status), "ok")

    def _ingest_card(self, samples: Samples, note: str) -> Card:
        for name, source in INGEST_COUNTERS:
            if name not in samples:
                continue
            delta = self._deltas.delta(name)
            if delta is None:
                return Card("Ingest rate", "…", f"{source}: measuring", "unknown")
            count, seconds = delta
            rate = count / seconds
            return Card("Ingest rate", f"{rate:,.1f} ticks/s", f"{source}, {samples[name]:,.0f} total", "ok")
        return Card("Ingest rate", "n/a", f"tick counters {note}", "unknown")

    def _freshness_card(self, samples: Samples, interval: str, note: str) -> Card:
        label = f'{{interval="{interval}"}}'
        total, count = f"{FRESHNESS}_sum{label}", f"{FRESHNESS}_count{label}"
        if count not in samples or not samples[count]:
            detail = "no bar finished yet" if count in samples else f"bars job metrics {note}"
            return Card("Bar freshness", "n/a", detail, "unknown")
        sum_delta, count_delta = self._deltas.delta(total), self._deltas.delta(count)
        if sum_delta and count_delta and count_delta[0] > 0:
            mean, detail = (
                sum_delta[0] / count_delta[0],
                f"{interval} bars, window end → Redis, last {count_delta[0]:.0f}",
            )
        else:
            mean, detail = samples[total] / samples[count], f"{interval} bars, window end → Redis, mean"
        return Card("Bar freshness", format_duration(mean), detail, _level(mean, 2.0, 10.0))


def latency_cards(newest_bar: pd.Series | None, interval: str, now: datetime) -> list[Card]:
    """End-to-end latency of the newest bar (its latest trade's event time until its revision was stored)
    and how long ago that revision was stored."""
    if newest_bar is None or pd.isna(newest_bar["updated_at"]):
        missing = f"no {interval} bars yet"
        return [
            Card("End-to-end latency", "n/a", missing, "unknown"),
            Card("Last bar update", "n/a", missing, "unknown"),
        ]
    stored = newest_bar["updated_at"]
    latency = max((stored - newest_bar["last_trade_time"]).total_seconds(), 0.0)
    age = max((pd.Timestamp(now) - stored).total_seconds(), 0.0)
    bar_time = newest_bar["window_start"].strftime("%Y-%m-%d %H:%M UTC")
    minutes = Interval.parse(interval).minutes * 60
    return [
        Card(
            "End-to-end latency",
            format_duration(latency),
            f"newest {interval} bar: last trade → stored",
            _level(latency, 2.0, 10.0),
        ),
        Card(
            "Last bar update",
            f"{format_duration(age)} ago",
            f"{interval} bar of {bar_time}",
            _level(age, 2 * minutes, 10 * minutes),
        ),
    ]


def lag_card(samples: Samples, note: str) -> Card:
    """Consumer lag in records: the total of every Spark query and consumer group, and each reader
    (``query/topic`` or ``group/topic``), when a lag gauge is exported."""
    readers = []
    for name in LAG_GAUGES:
        prefix = f"{name}{{"
        for key, value in sorted(samples.items()):
            if key.startswith(prefix):
                labels = dict(part.split("=", 1) for part in key[len(prefix) : -1].split(","))
                reader = labels.get("query", labels.get("group", "?")).strip('"')
                readers.append((f"{reader}/{labels.get('topic', '?').strip(chr(34))}", value))
    if not readers:
        return Card("Consumer lag", "n/a", f"lag gauge {note}", "unknown")
    lag = sum(value for _, value in readers)
    detail = " · ".join(f"{reader} {value:,.0f}" for reader, value in readers)
    return Card("Consumer lag", f"{lag:,.0f} records", detail, _level(lag, 1_000, 100_000))
