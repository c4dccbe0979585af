"""`tickflow alerts`: run the alert service on the anomalies topic."""

from __future__ import annotations

import signal
import threading

import typer


def alerts(
    exit_when_idle: float | None = typer.Option(
        None,
        "--exit-when-idle",
        metavar="SECONDS",
        help="Stop once no anomaly arrived and no alert waited for delivery for this long.",
    ),
) -> None:
    """Alerts for the anomalies on the anomalies topic: Slack-compatible webhook and e-mail, routed by
    severity, one per (type, symbol) per `alert_cooldown_s`, recorded in the `alerts` table; an alert that
    could not be delivered stays there and is retried until `alert_max_age_s`, also after a restart."""
    from alerting.service import run_alerts
    from tickflow.settings import get_settings

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    handled = run_alerts(get_settings(), stop, exit_when_idle_s=exit_when_idle)
    typer.echo(f"alerts: {handled} messages handled")
