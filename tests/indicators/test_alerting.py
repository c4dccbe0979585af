"""Alerting: routing by severity, cooldown, delivery to a local webhook and SMTP server, retries, record."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from confluent_kafka import Producer

from streaming_jobs.alerting.record import Status
from streaming_jobs.alerting.routing import Channel, Cooldown, route
from streaming_jobs.alerting.service import Alerter, run_alerts
from streaming_jobs.anomalies.model import Anomaly, AnomalyType, Severity
from tests.conftest import free_port
from tests.indicators.receivers import Webhook, smtp_server, webhook
from tests.streaming.support import topic_records
from tickflow.settings import Settings

T0 = datetime(2023, 9, 5, 16, 0, tzinfo=UTC)


def anomaly(
    minute: int = 0,
    kind: AnomalyType = AnomalyType.PRICE_SPIKE,
    symbol: str = "BTC-USD",
    severity: Severity = Severity.CRITICAL,
) -> Anomaly:
    return Anomaly(
        anomaly_type=kind,
        severity=severity,
        symbol=symbol,
        interval="1m",
        event_time=T0 + timedelta(minutes=minute),
        value=7.5,
        threshold=5.0,
        details={"prev_close": 25800.0, "close": 27735.0},
        detected_at=T0,
    )


def alert_settings(base: Settings, hook: Webhook, smtp_port: int, **overrides: object) -> Settings:
    values = {
        "alert_webhook_url": hook.url,
        "alert_email_to": ["ops@example.com", "desk@example.com"],
        "smtp_port": smtp_port,
        "alert_retry_backoff_s": 0.01,
        "alert_timeout_s": 2.0,
        **overrides,
    }
    return base.model_copy(update=values)


def recorded(settings: Settings) -> list[tuple[str, str, str, int]]:
    with psycopg2.connect(settings.postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT symbol, channel, status, attempts FROM alerts ORDER BY event_time, symbol, channel"
        )
        rows = cur.fetchall()
    conn.close()
    return rows


@pytest.fixture
def receivers() -> Iterator[tuple[Webhook, int, list]]:
    with webhook() as hook, smtp_server() as (port, inbox):
        yield hook, port, inbox


def test_routing_by_severity() -> None:
    settings = Settings(_env_file=None, alert_webhook_url="http://hook", alert_email_to="ops@example.com")
    assert route(Severity.INFO, settings) == []
    assert route(Severity.WARNING, settings) == [Channel.WEBHOOK]
    assert route(Severity.CRITICAL, settings) == [Channel.WEBHOOK, Channel.EMAIL]
    everything = settings.model_copy(update={"alert_email_min_severity": "info", "alert_webhook_url": ""})
    assert route(Severity.INFO, everything) == [Channel.EMAIL]


def test_cooldown_is_per_type_and_symbol_in_event_time() -> None:
    cooldown = Cooldown(timedelta(minutes=5))
    cooldown.mark(anomaly(0))
    assert not cooldown.allows(anomaly(4))
    assert cooldown.allows(anomaly(5))
    assert cooldown.allows(anomaly(1, symbol="ETH-USD"))
    assert cooldown.allows(anomaly(1, kind=AnomalyType.VOLUME_SPIKE))


def test_alerts_reach_webhook_and_smtp_and_are_recorded(fresh_db: Settings, receivers: tuple) -> None:
    hook, port, inbox = receivers
    settings = alert_settings(fresh_db, hook, port)
    with psycopg2.connect(settings.postgres_dsn) as conn:
        outcomes = Alerter(settings, conn).handle(anomaly())
        assert [(o.channel, o.status, o.attempts) for o in outcomes] == [
            (Channel.WEBHOOK, Status.SENT, 1),
            (Channel.EMAIL, Status.SENT, 1),
        ]
        warning = Alerter(settings, conn).handle(
            anomaly(kind=AnomalyType.VOLUME_SPIKE, severity=Severity.WARNING)
        )
        assert [o.channel for o in warning] == [Channel.WEBHOOK]
        assert (
            Alerter(settings, conn).handle(anomaly(kind=AnomalyType.RSI_EXTREME, severity=Severity.INFO))
            == []
        )
    conn.close()
    [first, second] = hook.bodies
    assert (
        set(first) == {"text"} and "price_spike BTC-USD 1m" in first["text"] and "critical" in first["text"]
    )
    assert "volume_spike" in second["text"]
    [mail] = inbox
    assert mail["Subject"] == "[Tickflow critical] price_spike BTC-USD 1m"
    assert mail["To"] == "ops@example.com, desk@example.com"
    assert "threshold 5" in mail.get_payload()
    assert len(recorded(settings)) == 3


def test_cooldown_holds_across_restarts_and_redelivery_is_not_resent(
    fresh_db: Settings, receivers: tuple
) -> None:
    hook, port, _ = receivers
    settings = alert_settings(fresh_db, hook, port, alert_email_to=[])
    with psycopg2.connect(settings.postgres_dsn) as conn:
        alerter = Alerter(settings, conn)
        assert [o.status for o in alerter.handle(anomaly(0))] == [Status.SENT]
        assert [o.status for o in alerter.handle(anomaly(2))] == [Status.SUPPRESSED]
        assert alerter.handle(anomaly(0)) == []  # redelivered: already recorded
        assert [o.status for o in alerter.handle(anomaly(1, symbol="ETH-USD"))] == [Status.SENT]
        restarted = Alerter(settings, conn)  # cooldown seeded from the record
        assert [o.status for o in restarted.handle(anomaly(4))] == [Status.SUPPRESSED]
        assert [o.status for o in restarted.handle(anomaly(5))] == [Status.SENT]
    conn.close()
    assert len(hook.bodies) == 3
    assert [r[2] for r in recorded(settings)] == ["sent", "sent", "suppressed", "suppressed", "sent"]


def test_failing_receivers_are_retried_then_recorded(fresh_db: Settings, receivers: tuple) -> None:
    hook, _, _ = receivers
    dead_smtp = free_port()  # nothing listens there
    settings = alert_settings(fresh_db, hook, dead_smtp, alert_retry_attempts=4)
    with psycopg2.connect(settings.postgres_dsn) as conn:
        alerter = Alerter(settings, conn)
        hook.failures = 2
        outcomes = {o.channel: o for o in alerter.handle(anomaly(0))}
        assert (outcomes[Channel.WEBHOOK].status, outcomes[Channel.WEBHOOK].attempts) == (Status.SENT, 3)
        email = outcomes[Channel.EMAIL]
        assert (email.status, email.attempts) == (Status.FAILED, 4) and "Connection refused" in email.error
        hook.failures, hook.fail_with = 10, 404  # a permanent error is not retried
        [rejected] = alerter.handle(anomaly(0, symbol="SOL-USD", severity=Severity.WARNING))
        assert (rejected.status, rejected.attempts) == (Status.FAILED, 1) and "404" in rejected.error
        hook.failures, hook.fail_with = 10, 503
        [unavailable] = alerter.handle(anomaly(0, symbol="XRP-USD", severity=Severity.WARNING))
        assert (unavailable.status, unavailable.attempts) == (Status.FAILED, 4)
    conn.close()
    assert hook.requests == 3 + 1 + 4 and len(hook.bodies) == 1
    assert ("BTC-USD", "email", "failed", 4) in recorded(settings)


def test_alert_service_consumes_the_anomalies_topic(fresh_env: Settings, receivers: tuple) -> None:
    hook, port, inbox = receivers
    settings = alert_settings(fresh_env, hook, port)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for item in (anomaly(0), anomaly(1), anomaly(0, symbol="ETH-USD", severity=Severity.WARNING)):
        producer.produce(settings.topic_anomalies, key=item.symbol.encode(), value=item.to_json())
    producer.produce(settings.topic_anomalies, key=b"BTC-USD", value=b'{"not": "an anomaly"}')
    producer.flush(10)
    assert run_alerts(settings, threading.Event(), exit_when_idle_s=1.5) == 4
    assert len(hook.bodies) == 2 and len(inbox) == 1
    assert run_alerts(settings, threading.Event(), exit_when_idle_s=1.5) == 0  # offsets were committed
    [(key, value)] = topic_records(settings, settings.topic_dlq)
    letter = json.loads(value)
    assert (key, letter["stage"], letter["reason"]) == (b"BTC-USD", "alerting", "malformed")
    assert letter["raw"] == '{"not": "an anomaly"}' and letter["topic"] == settings.topic_anomalies
