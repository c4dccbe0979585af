"""The alert service: consumes the ``anomalies`` topic and notifies by webhook and e-mail.

For each anomaly: route by severity to the configured channels; skip channels whose decision is already
recorded (a redelivered message); hold the alert back when the (type, symbol) cooldown is active
(recorded as ``suppressed``); otherwise deliver with retries and record ``sent`` or ``failed``. The
consumer commits an anomaly's offset only after its decisions are recorded, so a crash re-delivers it and
the record keeps it from being sent twice.
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

from producers.trades import DlqReason, raw_text
from streaming_jobs.alerting.channels import EmailSender, Sender, WebhookSender, deliver_with_retries, render
from streaming_jobs.alerting.record import Status, is_recorded, last_sent, record
from streaming_jobs.alerting.routing import Channel, Cooldown, route
from streaming_jobs.anomalies.model import Anomaly
from streaming_jobs.bars.sinks.kafka import make_producer, produce_all
from streaming_jobs.indicators.sinks import dead_letter_record
from tickflow.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Outcome:
    """The decision for one anomaly on one channel."""

    channel: Channel
    status: Status
    attempts: int
    error: str | None


class Alerter:
    """Routes, rate-limits, delivers and records alerts (one PostgreSQL connection, not thread-safe)."""

    def __init__(self, settings: Settings, conn: psycopg2.extensions.connection) -> None:
        self._settings = settings
        self._conn = conn
        self._senders: dict[Channel, Sender] = {
            Channel.WEBHOOK: WebhookSender(settings.alert_webhook_url, settings.alert_timeout_s),
            Channel.EMAIL: EmailSender(settings),
        }
        self._cooldown = Cooldown(timedelta(seconds=settings.alert_cooldown_s), last_sent(conn))

    def handle(self, anomaly: Anomaly) -> list[Outcome]:
        """Decide, deliver and record the alerts of ``anomaly``; the outcomes of channels decided now."""
        channels = [
            c for c in route(anomaly.severity, self._settings) if not is_recorded(self._conn, anomaly, c)
        ]
        if not channels:
            return []
        subject, text = render(anomaly)
        outcomes = []
        if not self._cooldown.allows(anomaly):
            outcomes = [Outcome(channel, Status.SUPPRESSED, 0, None) for channel in channels]
        else:
            for channel in channels:
                sender = self._senders[channel]
                delivery = deliver_with_retries(
                    lambda s=sender: s.send(subject, text),
                    self._settings.alert_retry_attempts,
                    self._settings.alert_retry_backoff_s,
                )
                status = Status.SENT if delivery.error is None else Status.FAILED
                outcomes.append(Outcome(channel, status, delivery.attempts, delivery.error))
        for outcome in outcomes:
            record(
                self._conn, anomaly, outcome.channel, outcome.status, outcome.attempts, outcome.error, text
            )
            log.info(
                "alert", key=anomaly.key, channel=outcome.channel, status=outcome.status, error=outcome.error
            )
        if any(o.status is Status.SENT for o in outcomes):
            self._cooldown.mark(anomaly)
        return outcomes


def run_alerts(settings: Settings, stop: threading.Event, exit_when_idle_s: float | None = None) -> int:
    """Consume ``settings.topic_anomalies`` in group ``alert_consumer_group`` and alert until ``stop`` is set
    (or, with ``exit_when_idle_s``, until no message arrived for that long).

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
    dlq = make_producer(settings)
    conn = psycopg2.connect(settings.postgres_dsn)
    handled = 0
    try:
        alerter = Alerter(settings, conn)
        assigned = threading.Event()  # idle time counts once the group gave us partitions
        consumer.subscribe([settings.topic_anomalies], on_assign=lambda *_: assigned.set())
        idle_since = time.monotonic()
        while not stop.is_set():
            message = consumer.poll(0.2)
            if message is None:
                if not assigned.is_set():
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
        conn.close()
    return handled


def _handle_message(message: Message, alerter: Alerter, dlq: Producer, settings: Settings) -> None:
    raw = message.value() or b""
    try:
        anomaly = Anomaly.from_json(raw)
    except pydantic.ValidationError as exc:
        _, stamp_ms = message.timestamp()
        record = dead_letter_record(
            settings.topic_dlq,
            stage="alerting",
            reason=DlqReason.MALFORMED.value,
            detail=f"not an anomaly record: {exc.errors(include_url=False)[:3]}",
            raw=raw_text(raw),
            source=(message.topic(), message.partition(), message.offset()),
            timestamp=datetime.fromtimestamp(stamp_ms / 1000, tz=UTC),
            key=message.key(),
        )
        produce_all(dlq, [record])
        log.warning("malformed anomaly sent to the dead-letter topic", offset=message.offset())
        return
    alerter.handle(anomaly)
