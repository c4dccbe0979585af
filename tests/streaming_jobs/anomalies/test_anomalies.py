"""Anomaly rules: each fires on constructed input and stays quiet on calm input."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from streaming_jobs.anomalies.features import bar_features
from streaming_jobs.anomalies.rules import AnomalyRules, detect
from streaming_jobs.indicators.formulas import compute_indicators
from tickflow.anomaly import Anomaly, AnomalyType, Severity
from tickflow.settings import Settings

NOW = datetime(2024, 1, 1, tzinfo=UTC)
RULES = AnomalyRules.from_settings(Settings(_env_file=None))


def calm_bars(n: int = 120) -> pd.DataFrame:
    """Prices wobbling ±0.1% around 100 (RSI near 50), volume 1.0-1.2."""
    rng = np.random.default_rng(3)
    close = 100.0 * (1.0 + 0.001 * np.sin(np.arange(n) * 0.9)) + rng.normal(0.0, 0.005, n)
    return pd.DataFrame(
        {
            "symbol": "BTC-USD",
            "interval": "1m",
            "window_start": pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC"),
            "high": close + 0.02,
            "low": close - 0.02,
            "close": close,
            "volume": rng.uniform(1.0, 1.2, n),
            "latency_ms": rng.uniform(5.0, 60.0, n),
        }
    )


def rows_of(bars: pd.DataFrame) -> pd.DataFrame:
    features = bar_features(bars, volume_window=RULES.volume_window, zscore_window=RULES.zscore_window)
    return pd.concat([bars.drop(columns="volume"), features, compute_indicators(bars["close"])], axis=1)


def only(anomalies: list[Anomaly], kind: AnomalyType) -> list[Anomaly]:
    assert {a.anomaly_type for a in anomalies} == {kind}, anomalies
    return anomalies


def test_calm_input_is_quiet() -> None:
    rows = rows_of(calm_bars())
    assert rows["rsi_14"].between(30, 70).iloc[14:].all()
    assert detect(rows, RULES, NOW) == []


@pytest.mark.parametrize(("move", "severity"), [(1.06, Severity.WARNING), (0.88, Severity.CRITICAL)])
def test_price_spike(move: float, severity: Severity) -> None:
    bars = calm_bars()
    prev_close = bars.loc[99, "close"]
    spike = prev_close * move
    bars.loc[100, ["high", "low"]] = [max(spike, bars.loc[100, "high"]), min(spike, bars.loc[100, "low"])]
    [anomaly] = only(detect(rows_of(bars).iloc[100:101], RULES, NOW), AnomalyType.PRICE_SPIKE)
    assert anomaly.value == pytest.approx((move - 1) * 100) and anomaly.threshold == 5.0
    assert anomaly.severity is severity and anomaly.event_time == bars.loc[100, "window_start"]
    assert anomaly.details["prev_close"] == pytest.approx(prev_close)
    assert (anomaly.symbol, anomaly.interval, anomaly.detected_at) == ("BTC-USD", "1m", NOW)


@pytest.mark.parametrize(("multiple", "severity"), [(4.0, Severity.INFO), (8.0, Severity.WARNING)])
def test_volume_spike(multiple: float, severity: Severity) -> None:
    bars = calm_bars()
    mean = bars["volume"].iloc[80:100].mean()
    bars.loc[100, "volume"] = multiple * mean
    [anomaly] = only(detect(rows_of(bars).iloc[100:101], RULES, NOW), AnomalyType.VOLUME_SPIKE)
    assert anomaly.value == pytest.approx(multiple) and anomaly.severity is severity
    bars.loc[100, "volume"] = 2.9 * mean
    assert detect(rows_of(bars).iloc[100:101], RULES, NOW) == []


@pytest.mark.parametrize(
    ("step", "side", "threshold"), [(0.03, "overbought", 70.0), (-0.03, "oversold", 30.0)]
)
def test_rsi_extremes(step: float, side: str, threshold: float) -> None:
    bars = calm_bars()
    trend = bars.loc[99, "close"] + step * np.arange(1, 21)  # 20 bars in one direction, 0.03% each
    bars.loc[100:119, ["close", "high", "low"]] = np.column_stack([trend, trend + 0.01, trend - 0.01])
    anomalies = only(detect(rows_of(bars).iloc[100:], RULES, NOW), AnomalyType.RSI_EXTREME)
    assert anomalies and all(a.details["side"] == side and a.threshold == threshold for a in anomalies)
    assert all(a.severity is Severity.INFO for a in anomalies)


def test_bar_latency_is_no_per_bar_anomaly() -> None:
    """Receipt -> bar visible takes a trigger interval and a batch (~2 s, the JVM's first batch ~24 s): the
    per-stage rules (tickflow.latency) and the freshness watchdog judge latency, not each bar."""
    bars = calm_bars()
    bars["latency_ms"] = 2000.0
    bars.loc[5, "latency_ms"] = 24_000.0
    assert detect(rows_of(bars), RULES, NOW) == []


def test_return_zscore() -> None:
    bars = calm_bars()
    jump = bars.loc[99, "close"] * 1.01  # +1%: far beyond returns of ~0.1%, below the 5% price spike
    bars.loc[100, ["close", "high", "low"]] = [jump, jump + 0.02, jump - 0.02]
    anomalies = {a.anomaly_type: a for a in detect(rows_of(bars).iloc[100:101], RULES, NOW)}
    assert set(anomalies) == {AnomalyType.RETURN_ZSCORE, AnomalyType.RSI_EXTREME}  # the jump lifts RSI too
    z = anomalies[AnomalyType.RETURN_ZSCORE]
    assert z.value > 2 * RULES.zscore_threshold and z.severity is Severity.CRITICAL


def test_thresholds_come_from_settings() -> None:
    bars = calm_bars()
    bars.loc[100, "high"] = bars.loc[99, "close"] * 1.03
    strict = AnomalyRules.from_settings(Settings(_env_file=None, anomaly_price_spike_pct=2.5))
    assert [a.anomaly_type for a in detect(rows_of(bars).iloc[100:101], strict, NOW)] == [
        AnomalyType.PRICE_SPIKE
    ]
    assert detect(rows_of(bars).iloc[100:101], RULES, NOW) == []


def test_features_use_only_past_bars() -> None:
    bars = calm_bars(60)
    features = bar_features(bars, volume_window=20, zscore_window=50)
    assert features["volume_mean"].iloc[20] == pytest.approx(bars["volume"].iloc[0:20].mean())
    assert features["volume_mean"].iloc[:20].isna().all() and features["return_z"].iloc[:51].isna().all()
    returns = bars["close"].pct_change()
    past = returns.iloc[5:55]
    assert features["return_z"].iloc[55] == pytest.approx((returns.iloc[55] - past.mean()) / past.std())


def test_anomaly_json_round_trip() -> None:
    bars = calm_bars()
    bars.loc[100, "volume"] = 10.0
    [anomaly] = detect(rows_of(bars).iloc[100:101], RULES, NOW)
    assert Anomaly.from_json(anomaly.to_json()) == anomaly
