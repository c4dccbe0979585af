"""`tickflow ml` commands: train, evaluate, predict, serve, models.

Every command reads the database and Redis locations, the registry dir and the ML settings from
``Settings`` (env ``TICKFLOW_*``); by default it works on every symbol/interval with final bars.
"""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tickflow.clients import postgres_dsn, redis_kwargs
from tickflow.settings import get_settings

if TYPE_CHECKING:  # heavy modules are imported inside the commands, keeping `tickflow --help` fast
    import pandas as pd
    import psycopg2.extensions

ml_app = typer.Typer(help="Train, evaluate and run price-prediction models.", no_args_is_help=True)

SymbolOpt = Annotated[list[str] | None, typer.Option("--symbol", "-s", help="Symbol (repeatable).")]
IntervalOpt = Annotated[
    list[str] | None, typer.Option("--interval", "-i", help="1m, 5m or 15m (repeatable).")
]
LookbackOpt = Annotated[
    float | None, typer.Option(help="Days of final bars up to the newest one (default: settings).")
]


def _connect() -> psycopg2.extensions.connection:
    import psycopg2

    try:
        conn = psycopg2.connect(postgres_dsn(get_settings()))
    except psycopg2.OperationalError as exc:
        typer.secho(f"cannot reach PostgreSQL ({exc}); is `tickflow stack up` running?", fg="red", err=True)
        raise typer.Exit(1) from exc
    conn.autocommit = True
    return conn


def _series(
    conn: psycopg2.extensions.connection, symbols: list[str] | None, intervals: list[str] | None
) -> list[tuple[str, str]]:
    from ml.training import select_series

    try:
        series = select_series(conn, symbols, intervals or list(get_settings().intervals))
    except ValueError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from exc
    if not series:
        typer.secho("no final bars stored for the requested symbols/intervals", fg="yellow", err=True)
        raise typer.Exit(1)
    return series


@ml_app.command("train")
def train_cmd(
    symbol: SymbolOpt = None, interval: IntervalOpt = None, lookback_days: LookbackOpt = None
) -> None:
    """Train a model per series on its recent final bars and register it (a new version)."""
    from tqdm import tqdm

    from ml.model import InsufficientDataError, TrainParams
    from ml.registry import ModelRegistry
    from ml.training import train_series

    settings = get_settings()
    registry = ModelRegistry(settings.model_dir)
    days = lookback_days or settings.train_lookback_days
    conn = _connect()
    try:
        for sym, ivl in tqdm(_series(conn, symbol, interval), desc="train", unit="series"):
            try:
                model = train_series(
                    sym, ivl, days, conn=conn, params=TrainParams(band=settings.prediction_band)
                )
            except InsufficientDataError as exc:
                tqdm.write(f"skipped {sym} {ivl}: {exc}")
                continue
            path = registry.save(model)
            m = model.info.metrics
            tqdm.write(
                f"{sym} {ivl}: version {model.info.version}, {model.info.best_iteration + 1} trees, "
                f"validation RMSE {m['valid_rmse_return'] * 1e4:.3f} bp vs naive "
                f"{m['valid_rmse_return_naive'] * 1e4:.3f} bp -> {path}"
            )
    finally:
        conn.close()


@ml_app.command("evaluate")
def evaluate_cmd(
    symbol: SymbolOpt = None,
    interval: IntervalOpt = None,
    start: Annotated[datetime | None, typer.Option(help="First bar (UTC; default: lookback).")] = None,
    end: Annotated[datetime | None, typer.Option(help="End of the range, exclusive (UTC).")] = None,
    lookback_days: LookbackOpt = None,
    folds: Annotated[int, typer.Option(min=1, help="Walk-forward test blocks.")] = 5,
    rolling_rows: Annotated[
        int | None, typer.Option(help="Rolling training window (rows); default expanding.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output dir (default: ml_report_dir/<time>).")] = None,
) -> None:
    """Walk-forward evaluation vs the naive baselines: table, verdicts, CSV files and an HTML plot."""
    from tqdm import tqdm

    from ml.data import load_bars, load_indicators
    from ml.evaluate import WalkForward, evaluate
    from ml.model import TrainParams
    from ml.report import write_report
    from ml.training import lookback_start

    settings = get_settings()
    days = lookback_days or settings.train_lookback_days
    conn = _connect()

    def load(sym: str, ivl: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        first = start or lookback_start(sym, ivl, days, conn=conn)
        return load_bars(sym, ivl, first, end, conn=conn), load_indicators(sym, ivl, first, end, conn=conn)

    try:
        series = _series(conn, symbol, interval)
        report = evaluate(
            series,
            load,
            WalkForward(
                folds, max_train_rows=rolling_rows, params=TrainParams(band=settings.prediction_band)
            ),
            progress=lambda pairs: tqdm(list(pairs), desc="evaluate", unit="series"),
        )
    finally:
        conn.close()
    out_dir = out or settings.ml_report_dir / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    paths = write_report(report, out_dir)
    typer.echo(report.to_text())
    typer.echo(f"report: {paths['report.html']}")


@ml_app.command("predict")
def predict_cmd(symbol: SymbolOpt = None, interval: IntervalOpt = None) -> None:
    """Predict the next close of each series from its newest final bar; write to PostgreSQL and Redis."""
    import redis
    from tqdm import tqdm

    from ml.live import PredictionService
    from ml.registry import ModelNotFoundError

    settings = get_settings()
    service = PredictionService(settings)
    conn = _connect()
    client = redis.Redis.from_url(settings.redis_url, **redis_kwargs(settings))
    try:
        for series in tqdm(_series(conn, symbol, interval), desc="predict", unit="series"):
            try:
                service.models[series] = service.registry.load(*series)
            except ModelNotFoundError as exc:
                tqdm.write(f"skipped: {exc}; run `tickflow ml train` first")
        rows = service.poll(conn, client)
    finally:
        conn.close()
        client.close()
    for r in rows.itertuples():
        typer.echo(
            f"{r.symbol} {r.interval} {r.window_start:%Y-%m-%d %H:%M}Z: close {r.predicted_close:.6g} "
            f"[{r.lower:.6g}, {r.upper:.6g}] from {r.base_close:.6g} (model {r.model_version})"
        )


@ml_app.command("serve")
def serve_cmd(symbol: SymbolOpt = None, interval: IntervalOpt = None) -> None:
    """Predict on every final bar and retrain every `retrain_interval_h` hours, until SIGINT/SIGTERM."""
    from ml.live import PredictionService

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    PredictionService(get_settings(), symbol, interval).serve(stop)


@ml_app.command("models")
def models_cmd() -> None:
    """List the newest registered model of every series."""
    from ml.registry import ModelRegistry

    infos = ModelRegistry(get_settings().model_dir).latest()
    if not infos:
        typer.echo("no models registered")
    for info in infos:
        typer.echo(
            f"{info.symbol} {info.interval}: {info.version} trained on {info.data_start} .. {info.data_end} "
            f"({info.n_train_rows + info.n_valid_rows} rows)"
        )
