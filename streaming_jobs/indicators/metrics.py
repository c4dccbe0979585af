"""Prometheus metrics of the indicator job (served by `tickflow stream indicators` on
``indicators_metrics_port``)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from prometheus_client import Counter, Histogram

from tickflow.anomaly import Anomaly

ROWS = Counter("tickflow_indicator_rows_total", "Indicator rows written (new and revised bars).")
REJECTED = Counter(
    "tickflow_indicator_rejected_total", "Bar records sent to the dead-letter topic.", ["reason"]
)
ANOMALIES = Counter("tickflow_anomalies_total", "Anomalies detected.", ["anomaly_type", "severity"])
BATCH_SECONDS = Histogram("tickflow_indicator_batch_seconds", "Time to detect and write one micro-batch (s).")


def record_batch(rows: int, rejected: pd.DataFrame, anomalies: Sequence[Anomaly], seconds: float) -> None:
    """Count one written micro-batch."""
    ROWS.inc(rows)
    for reason, count in rejected["reason"].value_counts().items():
        REJECTED.labels(reason=str(reason)).inc(int(count))
    for anomaly in anomalies:
        ANOMALIES.labels(anomaly_type=anomaly.anomaly_type.value, severity=anomaly.severity.value).inc()
    BATCH_SECONDS.observe(seconds)
