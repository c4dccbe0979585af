"""`tickflow stream` commands."""

from __future__ import annotations

import typer

from streaming_jobs.alerting.cli import alerts
from streaming_jobs.indicators.cli import indicators

stream_app = typer.Typer(help="Run the Spark Structured Streaming jobs.")


@stream_app.command("bars")
def bars(
    available_now: bool = typer.Option(
        False, "--available-now", help="Process what the tick topic holds now, then stop (backfills, tests)."
    ),
) -> None:
    """OHLCV/VWAP bars (1/5/15 min) from the tick topic into PostgreSQL, Redis, InfluxDB and Kafka.

    Runs until stopped (SIGTERM/SIGINT) with a micro-batch every `trigger_interval`; resumes from
    `<checkpoint_dir>/bars` and `<checkpoint_dir>/ticks`. Prometheus metrics on `bars_metrics_port`.
    """
    from streaming_jobs.bars.job import run
    from tickflow.settings import get_settings

    run(get_settings(), available_now=available_now)


stream_app.command("indicators")(indicators)
stream_app.command("alerts")(alerts)
