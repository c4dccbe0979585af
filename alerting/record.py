"""The record of alert decisions: the ``alerts`` table (``infra/db/migrations/0003_alerts.sql``, ``0004``).

Undelivered alerts wait in the same table (the outbox): ``outbox.py``."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import psycopg2.extensions

from alerting.routing import Channel
from tickflow.anomaly import Anomaly


class Status(StrEnum):
    """What happened to an alert on one channel."""

    PENDING = "pending"
    """Waiting in the outbox for its (next) attempt."""
    SENDING = "sending"
    """Claimed by an alert service that is sending it now."""
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


def is_recorded(conn: psycopg2.extensions.connection, anomaly: Anomaly, channel: Channel) -> bool:
    """True when a decision for ``anomaly`` on ``channel`` is already recorded (a redelivered anomaly)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT 1 FROM alerts WHERE anomaly_type = %s AND symbol = %s AND interval = %s"
            " AND event_time = %s AND channel = %s",
            (*anomaly.key, channel.value),
        )
        return cur.fetchone() is not None


def record(
    conn: psycopg2.extensions.connection,
    anomaly: Anomaly,
    channel: Channel,
    status: Status,
    attempts: int,
    error: str | None,
    message: str,
) -> None:
    """Record one decision and commit; a decision already recorded for the key is kept as it was.

    ``error`` must be free of secrets (the senders' errors are).
    """
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO alerts (anomaly_type, symbol, interval, event_time, channel, severity, status,"
            " attempts, error, message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (*anomaly.key, channel.value, anomaly.severity.value, status.value, attempts, error, message),
        )
    conn.commit()


def last_sent(conn: psycopg2.extensions.connection) -> dict[tuple[str, str], datetime]:
    """Event time of the latest alert of each (anomaly type, symbol) that was sent or is on its way
    (pending, sending): the cooldown's memory."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT anomaly_type, symbol, max(event_time) FROM alerts"
            " WHERE status IN ('pending', 'sending', 'sent') GROUP BY 1, 2"
        )
        rows = cur.fetchall()
    conn.commit()
    return {(anomaly_type, symbol): time for anomaly_type, symbol, time in rows}
