"""Which channels an anomaly goes to (routing by severity) and the per-(type, symbol) cooldown."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from tickflow.anomaly import Anomaly, Severity
from tickflow.settings import Settings


class Channel(StrEnum):
    """A notification channel."""

    WEBHOOK = "webhook"
    EMAIL = "email"


def route(severity: Severity, settings: Settings) -> list[Channel]:
    """The configured channels whose minimum severity ``severity`` reaches.

    A channel is configured when its target is set: ``alert_webhook_url`` for the webhook,
    ``alert_email_to`` for e-mail.
    """
    minimum = {
        Channel.WEBHOOK: (
            settings.alert_webhook_min_severity if settings.alert_webhook_url.get_secret_value() else None
        ),
        Channel.EMAIL: settings.alert_email_min_severity if settings.alert_email_to else None,
    }
    return [
        channel
        for channel, lowest in minimum.items()
        if lowest is not None and severity.rank >= Severity(lowest).rank
    ]


class Cooldown:
    """At most one alert per (anomaly type, symbol) within ``period`` of event time.

    Event time (the anomaly's bar start), not wall-clock time, so a replay of history alerts exactly like
    the live run did. Seeded from the record of sent alerts, so it holds across restarts.
    """

    def __init__(self, period: timedelta, last_sent: dict[tuple[str, str], datetime] | None = None) -> None:
        self._period = period
        self._last_sent = dict(last_sent or {})

    def allows(self, anomaly: Anomaly) -> bool:
        """True when no alert of the anomaly's (type, symbol) was sent within the period of its time."""
        last = self._last_sent.get((anomaly.anomaly_type.value, anomaly.symbol))
        return last is None or abs(anomaly.event_time - last) >= self._period

    def mark(self, anomaly: Anomaly) -> None:
        """Remember that an alert of ``anomaly`` was sent."""
        key = (anomaly.anomaly_type.value, anomaly.symbol)
        last = self._last_sent.get(key)
        self._last_sent[key] = anomaly.event_time if last is None else max(last, anomaly.event_time)
