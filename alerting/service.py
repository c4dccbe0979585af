"""The alert service: consumes the ``anomalies`` topic and notifies by webhook and e-mail.

For each anomaly: route by severity to the configured channels; skip channels whose decision is already
recorded (a redelivered message); hold the alert back when the (type, symbol) cooldown is active
(recorded as ``suppressed``); otherwise put it in the outbox (``pending``, ``outbox.py``). The consumer
commits an anomaly's offset only after its decisions are recorded, so a crash re-delivers it and the
record keeps it from being sent twice. Between polls the service delivers the outbox's due alerts; one that
fails is retried with back-off until it is ``alert_max_age_s`` old, also across restarts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg2
import psycopg2.extensions
import pydantic
import structlog
from confluent_kafka import Consumer, KafkaError, Message, Producer

from alerting import outbox
from alerting.channels import (
    DeliveryError,
    EmailSender,
    PermanentDeliveryError,
    Sender,
    WebhookSender,
    redact,
    render,
    secrets_of,
)
from alerting.record import Status, is_recorded, last_sent, record
from alerting.routing import Channel, Cooldown, route
from tickflow.anomaly import Anomaly
from tickflow.clients import postgres_dsn
from tickflow.dead_letter import DeadLetter, raw_text
from tickflow.kafka import make_producer, produce_all
from tickflow.settings import Settings
from tickflow.validity import DlqReason

log = structlog.get_logger(__name__)

OUTBOX_BATCH = 50
"""Most alerts one :meth:`Alerter.deliver_due` round attempts."""
ROUND_BUDGET_S = 30.0
"""A round claims no further alert after this long (s), so the consumer keeps polling well within Kafka's
``max.poll.interval.ms`` (300 s) even while a receiver times out on every attempt."""


@dataclass(frozen=True)
class Outcome:
    """The state of one anomaly's alert on one channel after a decision or an attempt."""

    channel: Channel
    status: Status
    attempts: int
    error: str | None


class Alerter:
    """Routes, rate-limits, queues, delivers and records alerts (one PostgreSQL connection, not
    thread-safe)."""

    def __init__(self, settings: Settings, conn: psycopg2.extensions.connection) -> None:
        self._settings = settings
        self._conn = conn
        self._senders: dict[Channel, Sender] = {
            Channel.WEBHOOK: WebhookSender(
                settings.alert_webhook_url.get_secret_value(), settings.alert_timeout_s
            ),
            Channel.EMAIL: EmailSender(settings),
        }
        self._secrets = secrets_of(settings)
        self._cooldown = Cooldown(timedelta(seconds=settings.alert_cooldown_s), last_sent(conn))

    def handle(self, anomaly: Anomaly) -> list[Outcome]:
        """Decide and record the alerts of ``anomaly``, then attempt the due ones.

        Returns:
            The outcomes of the channels decided now: ``suppressed``, or the state after the first
            attempt (``sent``; ``pending`` when it will be retried; ``failed`` when rejected for good).
        """
        channels = [
            c for c in route(anomaly.severity, self._settings) if not is_recorded(self._conn, anomaly, c)
        ]
        if not channels:
            return []
        _, text = render(anomaly)
        if not self._cooldown.allows(anomaly):
            for channel in channels:
                record(self._conn, anomaly, channel, Status.SUPPRESSED, 0, None, text)
                log.info("alert", key=anomaly.key, channel=channel, status=Status.SUPPRESSED)
            return [Outcome(channel, Status.SUPPRESSED, 0, None) for channel in channels]
        queued = [channel for channel in channels if outbox.enqueue(self._conn, anomaly, channel, text)]
        if queued:
            self._cooldown.mark(anomaly)
        attempted = {key: o for key, o in self.deliver_due()}
        return [
            attempted.get((*anomaly.key, channel.value), Outcome(channel, Status.PENDING, 0, None))
            for channel in queued
        ]

    def deliver_due(self) -> list[tuple[tuple, Outcome]]:
        """One delivery round of the outbox: give up stale claims, then claim and attempt the alerts due at
        the round's start one by one (oldest first), recording each attempt, until none is left,
        :data:`OUTBOX_BATCH` were attempted or :data:`ROUND_BUDGET_S` has passed. An alert is attempted at
        most once per round, however short its back-off.

        Returns:
            (row key, outcome) of each attempt.
        """
        s = self._settings
        if outbox.give_up_stale_claims(self._conn, s.alert_timeout_s):
            log.warning("alerts given up: their attempt was cut short", error=outbox.OUTCOME_UNKNOWN)
        results = []
        deadline = time.monotonic() + ROUND_BUDGET_S
        round_start = outbox.database_now(self._conn)
        while len(results) < OUTBOX_BATCH and time.monotonic() < deadline:
            # One at a time: a claim is never left unattempted.
            claimed = outbox.claim_due(self._conn, 1, due_by=round_start)
            if not claimed:
                break
            entry = claimed[0]
            subject = entry.message.split("\n", 1)[0]
            try:
                self._senders[entry.channel].send(subject, entry.message)
            except Exception as exc:
                error = redact(
                    str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}",
                    self._secrets,
                )
                status = outbox.mark_failed_attempt(
                    self._conn,
                    entry,
                    error,
                    permanent=isinstance(exc, PermanentDeliveryError),
                    retry_in_s=outbox.retry_delay_s(
                        entry.attempts + 1, s.alert_retry_backoff_s, s.alert_retry_max_backoff_s
                    ),
                    max_age_s=s.alert_max_age_s,
                )
            else:
                outbox.mark_sent(self._conn, entry)
                status, error = Status.SENT, None
            outcome = Outcome(entry.channel, status, entry.attempts + 1, error)
            log.info("alert", key=entry.key[:4], channel=entry.channel, status=status, error=error)
            results.append((entry.key, outcome))
        return results

    def has_undelivered(self) -> bool:
        """True while some alert waits in the outbox or is being sent."""
        return outbox.has_undelivered(self._conn)


def run_alerts(settings: Settings, stop: threading.Event, exit_when_idle_s: float | None = None) -> int:
    """Consume ``settings.topic_anomalies`` in group ``alert_consumer_group`` and alert until ``stop`` is set
    (or, with ``exit_when_idle_s``, until no message arrived and the outbox was empty for that long).

    Between polls (every 0.2 s at most) the outbox's due alerts are delivered, also those an earlier run
    left undelivered.

    A message that is not a valid anomaly goes to ``settings.topic_dlq`` with the reason and is committed.

    Returns:
        The number of messages consumed (anomalies and dead letters).
    """
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": settings.alert_consumer_group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": settings.kafka_session_timeout_ms,
            "heartbeat.interval.ms": 1000,
            "fetch.wait.max.ms": 50,
        }
    )
    dlq = make_producer(settings, "tickflow-alerting")
    conn = psycopg2.connect(postgres_dsn(settings))
    handled = 0
    try:
        alerter = Alerter(settings, conn)
        assigned = threading.Event()  # idle time counts once the group gave us partitions
        consumer.subscribe([settings.topic_anomalies], on_assign=lambda *_: assigned.set())
        idle_since = time.monotonic()
        while not stop.is_set():
            message = consumer.poll(0.2)
            alerter.deliver_due()
            if message is None:
                if not assigned.is_set() or alerter.has_undelivered():
                    idle_since = time.monotonic()
                elif exit_when_idle_s is not None and time.monotonic() - idle_since > exit_when_idle_s:
                    break
                continue
            idle_since = time.monotonic()
            if message.error() is not None:
                if message.error().fatal():
                    raise RuntimeError(f"Kafka consumer failed: {message.error()}")
                if message.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("kafka error", error=str(message.error()))
                continue
            _handle_message(message, alerter, dlq, settings)
            consumer.commit(message, asynchronous=False)
            handled += 1
    finally:
        consumer.close()
        dlq.flush(10)
        dlq.close()
        conn.close()
    return handled


def _handle_message(message: Message, alerter: Alerter, dlq: Producer, settings: Settings) -> None:
    raw = message.value() or b""
    try:
        anomaly = Anomaly.from_json(raw)
    except pydantic.ValidationError as exc:
        _, stamp_ms = message.timestamp()
        letter = DeadLetter.of(
            "alerting",
            DlqReason.MALFORMED,
            f"not an anomaly record: {exc.errors(include_url=False)[:3]}",
            raw_text(raw),
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            timestamp=datetime.fromtimestamp(stamp_ms / 1000, tz=UTC),
        )
        produce_all(dlq, [(settings.topic_dlq, message.key(), letter.to_wire())])
        log.warning("malformed anomaly sent to the dead-letter topic", offset=message.offset())
        return
    alerter.handle(anomaly)
