"""Notification channels: a Slack-compatible incoming webhook (httpx) and SMTP e-mail (smtplib), each
attempt retried with exponential back-off (tenacity)."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import httpx
from tenacity import Retrying, retry_if_not_exception_type, stop_after_attempt, wait_exponential

from streaming_jobs.anomalies.model import Anomaly
from tickflow.settings import Settings

MAX_BACKOFF_S = 30.0


class PermanentDeliveryError(Exception):
    """The receiver rejected the alert in a way a retry cannot fix (e.g. HTTP 400, 403, 404)."""


class Sender(Protocol):
    """Delivers one alert; raises on failure."""

    def send(self, subject: str, text: str) -> None: ...


def render(anomaly: Anomaly) -> tuple[str, str]:
    """(subject, text) of the alert for ``anomaly``; plain text, readable in Slack and in a mail client."""
    what = f"{anomaly.anomaly_type.value} {anomaly.symbol} {anomaly.interval}"
    subject = f"[Tickflow {anomaly.severity.value}] {what}"
    details = ", ".join(f"{name}={value}" for name, value in anomaly.details.items())
    text = (
        f"{subject}\n"
        f"value {anomaly.value:.6g} past threshold {anomaly.threshold:.6g}"
        f" at {anomaly.event_time.isoformat()}" + (f" ({details})" if details else "")
    )
    return subject, text


class WebhookSender:
    """POSTs ``{"text": ...}`` (Slack incoming-webhook format) to ``url``.

    Raises:
        PermanentDeliveryError: a 4xx answer other than 408/429.
        httpx.HTTPError: a transport error, timeout, 408, 429 or 5xx answer (worth retrying).
    """

    def __init__(self, url: str, timeout_s: float) -> None:
        self._url = url
        self._timeout_s = timeout_s

    def send(self, subject: str, text: str) -> None:
        response = httpx.post(self._url, json={"text": text}, timeout=self._timeout_s)
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise PermanentDeliveryError(f"webhook answered {response.status_code}: {response.text[:200]}")
        response.raise_for_status()


class EmailSender:
    """Sends a plain-text e-mail through an SMTP server (optional STARTTLS and login).

    Raises:
        PermanentDeliveryError: the server refused every recipient or the sender.
        smtplib.SMTPException, OSError: any other SMTP or connection failure (worth retrying).
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def send(self, subject: str, text: str) -> None:
        s = self._settings
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = s.alert_email_from
        message["To"] = ", ".join(s.alert_email_to)
        message.set_content(text)
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.alert_timeout_s) as smtp:
                if s.smtp_starttls:
                    smtp.starttls()
                if s.smtp_username:
                    smtp.login(s.smtp_username, s.smtp_password)
                smtp.send_message(message)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
            raise PermanentDeliveryError(f"SMTP refused: {exc}") from exc


@dataclass(frozen=True)
class Delivery:
    """Outcome of :func:`deliver_with_retries`."""

    attempts: int
    error: str | None
    """None when delivered, else the last attempt's error."""


def deliver_with_retries(send: Callable[[], None], attempts: int, backoff_s: float) -> Delivery:
    """Call ``send`` until it succeeds, at most ``attempts`` times, waiting ``backoff_s * 2**k`` seconds
    (at most 30 s) between tries; a :class:`PermanentDeliveryError` is not retried.

    Never raises: a receiver that keeps failing is reported in the returned :class:`Delivery` (and then
    recorded), so one broken channel cannot stop the others.
    """
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=backoff_s, max=MAX_BACKOFF_S),
        retry=retry_if_not_exception_type(PermanentDeliveryError),
        reraise=True,
    )
    error = None
    try:
        retrying(send)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    return Delivery(attempts=retrying.statistics.get("attempt_number", 1), error=error)
