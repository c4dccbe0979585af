"""Anomaly rules: pure functions from bar rows (features, indicators) to :class:`Anomaly` records.

Shared by the streaming job (run on each micro-batch's revised bars) and the tests. A rule fires when its
value is strictly past its threshold; NaN (not enough history) never fires. The severity is the rule's
base severity, raised one step when the value is ``critical_ratio`` times past the threshold.

Latency is not judged per bar: each stage has its own rule (:mod:`tickflow.latency`), and bar freshness is
watched by :mod:`streaming_jobs.anomalies.watchdog`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from tickflow.anomaly import Anomaly, AnomalyType, Severity
from tickflow.settings import Settings

_SEVERITY: dict[AnomalyType, tuple[Severity, Severity]] = {
    AnomalyType.PRICE_SPIKE: (Severity.WARNING, Severity.CRITICAL),
    AnomalyType.VOLUME_SPIKE: (Severity.INFO, Severity.WARNING),
    AnomalyType.RSI_EXTREME: (Severity.INFO, Severity.INFO),
    AnomalyType.RETURN_ZSCORE: (Severity.WARNING, Severity.CRITICAL),
}
"""(base, raised) severity of each rule."""


@dataclass(frozen=True)
class AnomalyRules:
    """Thresholds and windows of the rules (see the ``anomaly_*`` settings for units)."""

    price_spike_pct: float
    volume_spike_ratio: float
    volume_window: int
    rsi_high: float
    rsi_low: float
    zscore_threshold: float
    zscore_window: int
    critical_ratio: float

    @classmethod
    def from_settings(cls, settings: Settings) -> AnomalyRules:
        """The rules configured by the ``anomaly_*`` settings."""
        return cls(
            price_spike_pct=settings.anomaly_price_spike_pct,
            volume_spike_ratio=settings.anomaly_volume_spike_ratio,
            volume_window=settings.anomaly_volume_window,
            rsi_high=settings.anomaly_rsi_high,
            rsi_low=settings.anomaly_rsi_low,
            zscore_threshold=settings.anomaly_zscore_threshold,
            zscore_window=settings.anomaly_zscore_window,
            critical_ratio=settings.anomaly_critical_ratio,
        )


def detect(rows: pd.DataFrame, rules: AnomalyRules, detected_at: datetime) -> list[Anomaly]:
    """Every anomaly of ``rows``.

    Args:
        rows: one row a bar revision with ``symbol``, ``interval``, ``window_start`` (UTC timestamps),
            ``close``, ``rsi_14`` and the columns of
            :data:`streaming_jobs.anomalies.features.FEATURE_COLUMNS`.
        rules: thresholds.
        detected_at: detection time stamped on the records (UTC).

    Returns:
        The anomalies, rule by rule, in row order.
    """
    return [
        *price_spikes(rows, rules, detected_at),
        *volume_spikes(rows, rules, detected_at),
        *rsi_extremes(rows, rules, detected_at),
        *return_zscores(rows, rules, detected_at),
    ]


def price_spikes(rows: pd.DataFrame, rules: AnomalyRules, detected_at: datetime) -> list[Anomaly]:
    """Bars whose high or low moved more than ``price_spike_pct`` percent from the previous close."""
    value = rows["price_move_pct"]
    return _fire(
        rows,
        value.abs() > rules.price_spike_pct,
        AnomalyType.PRICE_SPIKE,
        value,
        rules.price_spike_pct,
        excess=value.abs() / rules.price_spike_pct,
        rules=rules,
        detected_at=detected_at,
        details=("prev_close", "close"),
    )


def volume_spikes(rows: pd.DataFrame, rules: AnomalyRules, detected_at: datetime) -> list[Anomaly]:
    """Bars whose volume is more than ``volume_spike_ratio`` times the rolling mean volume."""
    ratio = rows["volume"] / rows["volume_mean"]
    return _fire(
        rows,
        ratio > rules.volume_spike_ratio,
        AnomalyType.VOLUME_SPIKE,
        ratio,
        rules.volume_spike_ratio,
        excess=ratio / rules.volume_spike_ratio,
        rules=rules,
        detected_at=detected_at,
        details=("volume", "volume_mean"),
    )


def rsi_extremes(rows: pd.DataFrame, rules: AnomalyRules, detected_at: datetime) -> list[Anomaly]:
    """Bars whose RSI 14 is above ``rsi_high`` (overbought) or below ``rsi_low`` (oversold)."""
    rsi = rows["rsi_14"]
    high = _fire(
        rows,
        rsi > rules.rsi_high,
        AnomalyType.RSI_EXTREME,
        rsi,
        rules.rsi_high,
        excess=None,
        rules=rules,
        detected_at=detected_at,
        details=("close",),
        extra={"side": "overbought"},
    )
    low = _fire(
        rows,
        rsi < rules.rsi_low,
        AnomalyType.RSI_EXTREME,
        rsi,
        rules.rsi_low,
        excess=None,
        rules=rules,
        detected_at=detected_at,
        details=("close",),
        extra={"side": "oversold"},
    )
    return high + low


def return_zscores(rows: pd.DataFrame, rules: AnomalyRules, detected_at: datetime) -> list[Anomaly]:
    """Bars whose return has a rolling z-score beyond ``±zscore_threshold``."""
    z = rows["return_z"]
    return _fire(
        rows,
        z.abs() > rules.zscore_threshold,
        AnomalyType.RETURN_ZSCORE,
        z,
        rules.zscore_threshold,
        excess=z.abs() / rules.zscore_threshold,
        rules=rules,
        detected_at=detected_at,
        details=("prev_close", "close"),
    )


def _fire(
    rows: pd.DataFrame,
    hits: pd.Series,
    anomaly_type: AnomalyType,
    value: pd.Series,
    threshold: float,
    *,
    excess: pd.Series | None,
    rules: AnomalyRules,
    detected_at: datetime,
    details: tuple[str, ...],
    extra: dict[str, Any] | None = None,
) -> list[Anomaly]:
    """One anomaly per row where ``hits`` is true; ``excess`` (value / threshold) raises the severity."""
    base, raised = _SEVERITY[anomaly_type]
    hits = hits.fillna(False).astype(bool)
    anomalies = []
    for index in rows.index[hits.to_numpy()]:
        row = rows.loc[index]
        is_raised = excess is not None and excess.loc[index] >= rules.critical_ratio
        anomalies.append(
            Anomaly(
                anomaly_type=anomaly_type,
                severity=raised if is_raised else base,
                symbol=row["symbol"],
                interval=row["interval"],
                event_time=pd.Timestamp(row["window_start"]).to_pydatetime(),
                value=float(value.loc[index]),
                threshold=threshold,
                details={**{name: float(row[name]) for name in details}, **(extra or {})},
                detected_at=detected_at,
            )
        )
    return anomalies
