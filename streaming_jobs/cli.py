"""`tickflow stream` commands."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

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

    with stops_cleanly("bars"):
        run(get_settings(), available_now=available_now)


@stream_app.command("reset")
def reset(
    job: str = typer.Argument(..., help="bars or indicators"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a job's checkpoints (its Kafka offsets and state): its next run starts over from
    `spark_starting_offsets`. Bars already stored are upserted again, so nothing is counted twice."""
    from streaming_jobs.checkpoints import JOB_QUERIES, checkpoint
    from streaming_jobs.checkpoints import reset as reset_checkpoints
    from tickflow.settings import get_settings

    if job not in JOB_QUERIES:
        raise typer.BadParameter(f"{job!r}: expected one of {', '.join(JOB_QUERIES)}")
    settings = get_settings()
    paths = [checkpoint(settings, q) for q in JOB_QUERIES[job]]  # type: ignore[index]
    if not yes:
        typer.confirm(f"Delete {', '.join(paths)}?", abort=True)
    deleted = reset_checkpoints(settings, job)  # type: ignore[arg-type]
    typer.echo(f"deleted: {', '.join(deleted)}" if deleted else "no checkpoint to delete")


@contextmanager
def stops_cleanly(job: str) -> Iterator[None]:
    """Turn a job's failure into one red line and exit code 2 (checkpoint mismatch or in use) or 1
    (other)."""
    from pyspark.errors import StreamingQueryException

    from streaming_jobs.checkpoints import CheckpointInUse, CheckpointMismatch

    try:
        yield
    except (CheckpointMismatch, CheckpointInUse) as exc:
        typer.secho(f"tickflow stream {job}: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    except StreamingQueryException as exc:
        first = str(exc).strip().splitlines()[0][:400] if str(exc).strip() else type(exc).__name__
        typer.secho(
            f"tickflow stream {job}: a query failed: {first}; the next run re-runs the failed batch",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1) from exc


stream_app.command("indicators")(indicators)
