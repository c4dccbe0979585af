"""Where anomalies go (PostgreSQL, the anomalies topic, Redis pub/sub): :mod:`tickflow.anomaly_sinks`, shared
with the stage-latency monitor of the producers and the API."""

from tickflow.anomaly_sinks import anomaly_records, publish_anomalies, upsert_anomalies

__all__ = ["anomaly_records", "publish_anomalies", "upsert_anomalies"]
