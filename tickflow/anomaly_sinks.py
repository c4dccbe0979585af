"""Where anomalies go: PostgreSQL ``anomalies`` (idempotent upsert on the anomaly's key), the Kafka topic
``Settings.topic_anomalies`` (key = symbol, value = :meth:`Anomaly.to_json`) and the Redis pub/sub channel
``tickflow.keys.ANOMALIES_CHANNEL``. Shared by the stages that raise anomalies: the indicator job and its
bar-freshness watchdog (``streaming_jobs``), and the stage-latency monitor of the producers and the API
(:mod:`tickflow.latency_monitor`)."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg2.extensions
import redis
from psycopg2.extras import Json, execute_values

from tickflow.anomaly import Anomaly
from tickflow.kafka import Record
from tickflow.keys import ANOMALIES_CHANNEL

_UPSERT = (
    "INSERT INTO anomalies (anomaly_type, symbol, interval, event_time, severity, value, threshold,"
    " details, detected_at) VALUES %s ON CONFLICT (anomaly_type, symbol, interval, event_time) DO UPDATE SET"
    " severity = EXCLUDED.severity, value = EXCLUDED.value, threshold = EXCLUDED.threshold,"
    " details = EXCLUDED.details, detected_at = EXCLUDED.detected_at"
)


def upsert_anomalies(conn: psycopg2.extensions.connection, anomalies: Sequence[Anomaly]) -> int:
    """Upsert ``anomalies`` (a revised bar revises its anomaly) and commit; returns the number written."""
    if not anomalies:
        return 0
    values = [
        (
            *a.key,
            a.severity.value,
            a.value,
            a.threshold,
            Json(a.model_dump(mode="json")["details"]),
            a.detected_at,
        )
        for a in anomalies
    ]
    with conn.cursor() as cur:
        execute_values(cur, _UPSERT, values)
    conn.commit()
    return len(values)


def anomaly_records(topic: str, anomalies: Sequence[Anomaly]) -> list[Record]:
    """The Kafka records of ``anomalies`` on ``topic``: key = symbol, value = :meth:`Anomaly.to_json`."""
    return [(topic, a.symbol.encode(), a.to_json()) for a in anomalies]


def publish_anomalies(client: redis.Redis, anomalies: Sequence[Anomaly]) -> None:
    """Publish each anomaly's JSON on ``ANOMALIES_CHANNEL``."""
    if not anomalies:
        return
    pipe = client.pipeline(transaction=False)
    for anomaly in anomalies:
        pipe.publish(ANOMALIES_CHANNEL, anomaly.to_json())
    pipe.execute()
