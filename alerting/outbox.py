"""The alert outbox: alerts waiting for delivery live in the ``alerts`` table (``0004_alert_outbox.sql``).

Life of an alert on one channel::

    pending --claim--> sending --delivered--> sent
       ^                  |---failed, retryable, younger than max age--> pending (next_attempt_at later)
       |                  |---failed permanently, or too old-----------> failed
       +------------------+

A claim is committed before the attempt, so two alert services never send the same alert, and an
attempt cut short by a crash is never repeated: a claim older than :data:`STALE_CLAIM_TIMEOUTS` times the
attempt timeout is given up as ``failed`` ("outcome unknown"). That makes delivery at most once per
channel. Every time is the database's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg2.extensions

from alerting.record import Status
from alerting.routing import Channel
from tickflow.anomaly import Anomaly

STALE_CLAIM_TIMEOUTS = 4
"""A claim this many attempt timeouts old belongs to an alert service that stopped while sending."""

OUTCOME_UNKNOWN = "delivery outcome unknown: the alert service stopped while sending; not retried"

_KEY = "anomaly_type, symbol, interval, event_time, channel"


@dataclass(frozen=True)
class Entry:
    """An alert claimed for one attempt."""

    key: tuple[str, str, str, datetime, str]
    """(anomaly type, symbol, interval, event time, channel): the row's primary key."""
    channel: Channel
    message: str
    attempts: int
    """Attempts made before this one."""
    claimed_at: datetime
    """The claim's token: only the claimant may finish the entry."""


def enqueue(conn: psycopg2.extensions.connection, anomaly: Anomaly, channel: Channel, message: str) -> bool:
    """Put the alert of ``anomaly`` on ``channel`` in the outbox, due now, and commit.

    Returns:
        False when a decision for the key was already recorded (nothing changed).
    """
    with conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO alerts ({_KEY}, severity, status, attempts, message, next_attempt_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, 0, %s, now()) ON CONFLICT DO NOTHING",
            (*anomaly.key, channel.value, anomaly.severity.value, Status.PENDING.value, message),
        )
        added = cur.rowcount == 1
    conn.commit()
    return added


def database_now(conn: psycopg2.extensions.connection) -> datetime:
    """The database's clock now (UTC-aware, microseconds), in a transaction of its own."""
    with conn.cursor() as cur:
        cur.execute("SELECT clock_timestamp()")
        (now,) = cur.fetchone()
    conn.commit()
    return now


def claim_due(
    conn: psycopg2.extensions.connection, limit: int, due_by: datetime | None = None
) -> list[Entry]:
    """Claim up to ``limit`` pending alerts whose attempt is due (oldest first) and commit the claims.

    Args:
        due_by: claim only alerts due at or before this time of the database's clock (default: now). A
            delivery round passes its start, so an alert retried in the round is not attempted again in it.
    """
    with conn.cursor() as cur:
        cur.execute(
            f"UPDATE alerts SET status = 'sending', claimed_at = clock_timestamp() WHERE ({_KEY}) IN ("
            f" SELECT {_KEY} FROM alerts WHERE status = 'pending'"
            "  AND next_attempt_at <= COALESCE(%s::timestamptz, now())"
            "  ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED)"
            f" RETURNING {_KEY}, message, attempts, claimed_at",
            (due_by, limit),
        )
        rows = cur.fetchall()
    conn.commit()
    return [
        Entry(key=tuple(row[:5]), channel=Channel(row[4]), message=row[5], attempts=row[6], claimed_at=row[7])
        for row in sorted(rows, key=lambda r: r[3])
    ]


def mark_sent(conn: psycopg2.extensions.connection, entry: Entry) -> None:
    """Record that ``entry`` was delivered by this attempt, and commit."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE alerts SET status = 'sent', attempts = attempts + 1, error = NULL,"
            f" next_attempt_at = NULL WHERE ({_KEY}) = (%s, %s, %s, %s, %s) AND claimed_at = %s",
            (*entry.key, entry.claimed_at),
        )
    conn.commit()


def mark_failed_attempt(
    conn: psycopg2.extensions.connection,
    entry: Entry,
    error: str,
    *,
    permanent: bool,
    retry_in_s: float,
    max_age_s: float,
) -> Status:
    """Record a failed attempt of ``entry`` and commit: back to ``pending``, due in ``retry_in_s`` seconds,
    unless the failure is ``permanent`` or that would be more than ``max_age_s`` after the alert was raised
    (then ``failed``).

    Returns:
        The entry's new status (PENDING or FAILED).
    """
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE alerts SET attempts = attempts + 1, error = %(error)s,"
            " status = CASE WHEN %(permanent)s"
            "  OR now() + make_interval(secs => %(retry)s) > recorded_at + make_interval(secs => %(age)s)"
            "  THEN 'failed' ELSE 'pending' END,"
            " next_attempt_at = now() + make_interval(secs => %(retry)s)"
            f" WHERE ({_KEY}) = (%(t)s, %(s)s, %(i)s, %(e)s, %(c)s) AND claimed_at = %(claimed)s"
            " RETURNING status",
            {
                "error": error,
                "permanent": permanent,
                "retry": retry_in_s,
                "age": max_age_s,
                **dict(zip(("t", "s", "i", "e", "c"), entry.key, strict=True)),
                "claimed": entry.claimed_at,
            },
        )
        row = cur.fetchone()
    conn.commit()
    return Status(row[0]) if row else Status.FAILED


def give_up_stale_claims(conn: psycopg2.extensions.connection, attempt_timeout_s: float) -> int:
    """Mark ``failed`` the alerts claimed more than :data:`STALE_CLAIM_TIMEOUTS` × ``attempt_timeout_s``
    ago (their sender stopped mid-attempt; resending could deliver twice), and commit.

    Returns:
        How many were given up.
    """
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE alerts SET status = 'failed', error = %s WHERE status = 'sending'"
            " AND claimed_at < now() - make_interval(secs => %s)",
            (OUTCOME_UNKNOWN, STALE_CLAIM_TIMEOUTS * attempt_timeout_s),
        )
        count = cur.rowcount
    conn.commit()
    return count


def has_undelivered(conn: psycopg2.extensions.connection) -> bool:
    """True while some alert is pending or being sent."""
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM alerts WHERE status IN ('pending', 'sending') LIMIT 1")
        found = cur.fetchone() is not None
    conn.commit()
    return found


def retry_delay_s(attempts: int, first_s: float, max_s: float) -> float:
    """Back-off before the next attempt after ``attempts`` failed ones: ``first_s * 2**(attempts-1)``,
    at most ``max_s`` (seconds)."""
    return min(first_s * 2.0 ** max(attempts - 1, 0), max_s)
