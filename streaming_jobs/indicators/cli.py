"""`tickflow stream indicators`: run the indicator and anomaly job."""

from __future__ import annotations

import typer


def indicators(
    available_now: bool = typer.Option(
        False, "--available-now", help="Process the bars the topics hold now, then stop (backfills, tests)."
    ),
) -> None:
    """Indicators (SMA, EMA, RSI, MACD, Bollinger) and anomalies from the bar topics into PostgreSQL,
    Redis, InfluxDB and the anomalies topic.

    Runs until stopped (SIGTERM/SIGINT) with a micro-batch every `trigger_interval`; resumes from
    `<checkpoint_dir>/indicators`. Prometheus metrics on `indicators_metrics_port`.
    """
    from streaming_jobs.cli import stops_cleanly
    from streaming_jobs.indicators.job import run_indicators
    from tickflow.settings import get_settings

    with stops_cleanly("indicators"):
        run_indicators(get_settings(), available_now=available_now)
