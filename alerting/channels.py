"""Notification channels: a Slack-compatible incoming webhook (httpx) and SMTP e-mail (smtplib).

One call of :meth:`Sender.send` is one attempt; retries are the outbox's job (``outbox.py``). Errors are
raised with messages that never carry the webhook URL or the SMTP password (:func:`redact`).
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterable
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from tickflow.anomaly import Anomaly
from tickflow.settings import Settings

# httpx logs every request with its full URL at INFO; the webhook URL is a secret.
logging.getLogger("httpx").setLevel(logging.WARNING)

REDACTED = "[redacted]"


class DeliveryError(Exception):
    """One delivery attempt failed; the message is free of secrets."""


class PermanentDeliveryError(DeliveryError):
    """The receiver rejected the alert in a way a retry cannot fix (e.g. HTTP 400, 403, 404)."""


class Sender(Protocol):
    """Delivers one alert in one attempt; raises on failure."""

    def send(self, subject: str, text: str) -> None: ...


def render(anomaly: Anomaly) -> tuple[str, str]:
    """(subject, text) of the alert for ``anomaly``; plain text, readable in Slack and in a mail client.

    The text's first line is the subject (so the stored text is enough to send it again).
    """
    what = f"{anomaly.anomaly_type.value} {anomaly.symbol} {anomaly.interval}"
    subject = f"[Tickflow {anomaly.severity.value}] {what}"
    details = ", ".join(f"{name}={value}" for name, value in anomaly.details.items())
    text = (
        f"{subject}\n"
        f"value {anomaly.value:.6g} past threshold {anomaly.threshold:.6g}"
        f" at {anomaly.event_time.isoformat()}" + (f" ({details})" if details else "")
    )
    return subject, text


def url_secrets(url: str) -> list[str]:
    """The secret parts of a webhook ``url``: the whole URL, the URL without scheme, and its path and query
    (which hold the token); empty for an empty URL."""
    if not url:
        return []
    parts = urlsplit(url)
    found = [url, url.split("://", 1)[-1], parts.path + (f"?{parts.query}" if parts.query else "")]
    return [s for s in found if len(s) > 1]  # a path of "/" is no secret


def secrets_of(settings: Settings) -> list[str]:
    """The secrets of the alert settings that must never reach an error, the record or a log: the parts
    of the webhook URL (:func:`url_secrets`) and the SMTP password."""
    password = settings.smtp_password.get_secret_value()
    return url_secrets(settings.alert_webhook_url.get_secret_value()) + ([password] if password else [])


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each of ``secrets`` replaced by ``[redacted]`` (longest first)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class WebhookSender:
    """POSTs ``{"text": ...}`` (Slack incoming-webhook format) to the secret ``url``.

    ``timeout_s`` bounds connecting and each read (and write) of the request.

    Raises:
        PermanentDeliveryError: a 4xx answer other than 408/429.
        DeliveryError: a transport error, timeout, 408, 429 or 5xx answer (worth retrying).
    """

    def __init__(self, url: str, timeout_s: float) -> None:
        self._url = url
        self._timeout = httpx.Timeout(timeout_s)
        self._secrets = url_secrets(url)

    def send(self, subject: str, text: str) -> None:
        try:
            response = httpx.post(self._url, json={"text": text}, timeout=self._timeout)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # some messages quote the URL
            raise DeliveryError(
                f"webhook unreachable: {type(exc).__name__}: {self._clean(str(exc))}"
            ) from None
        if response.is_success:
            return
        answer = f"webhook answered {response.status_code}: {self._clean(response.text[:200])}"
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise PermanentDeliveryError(answer)
        raise DeliveryError(answer)

    def _clean(self, text: str) -> str:
        return redact(text, self._secrets)


class EmailSender:
    """Sends a plain-text e-mail through an SMTP server (optional STARTTLS and login).

    ``alert_timeout_s`` bounds connecting and each read from the server.

    Raises:
        PermanentDeliveryError: the server refused every recipient or the sender.
        DeliveryError: any other SMTP or connection failure (worth retrying).
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._secrets = secrets_of(settings)

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
                    smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
                smtp.send_message(message)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
            raise PermanentDeliveryError(f"SMTP refused: {redact(str(exc), self._secrets)}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {redact(str(exc), self._secrets)}") from None
