"""`tickflow produce` commands: live exchange feeds, file replay, the synthetic source, and `auto`."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from tickflow.settings import Settings, get_settings

if TYPE_CHECKING:
    from producers.pipeline import IngestStats

produce_app = typer.Typer(help="Produce ticks to Kafka (live, replay, synthetic).")

SymbolsOption = Annotated[
    str | None, typer.Option(help="Comma-separated normalised symbols (default: the configured universe).")
]
MetricsOption = Annotated[
    int | None, typer.Option(help="Prometheus port (default: producer_metrics_port; 0 disables).")
]
PROBE_TIMEOUT_S = 3.0


def _symbols(value: str | None, settings: Settings) -> list[str]:
    return [s.strip() for s in value.split(",") if s.strip()] if value else list(settings.symbols)


def _serve_metrics(port: int | None, settings: Settings) -> None:
    """Serve Prometheus metrics and start the ingest stage's latency monitor (closed at exit)."""
    import atexit

    from producers.metrics import LATENCY, serve_metrics
    from tickflow.latency_monitor import StageMonitor

    serve_metrics(settings.producer_metrics_port if port is None else port, settings.metrics_bind_host)
    atexit.register(StageMonitor(settings, LATENCY).start().close)


def _report(stats: IngestStats) -> None:
    typer.echo(stats.summary())


def _run_live(
    settings: Settings, exchange: str, symbols: list[str], ws_url: str | None, rest_url: str | None
) -> None:
    from producers.live import LiveStreamer
    from producers.shutdown import stop_on_signals

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        streamer = LiveStreamer(settings, exchange, symbols, ws_url=ws_url, rest_url=rest_url)
        with stop_on_signals(lambda: loop.call_soon_threadsafe(stop.set)):
            report = await streamer.run(stop)
        _report(report.live)
        _report(report.backfill)
        typer.echo(f"gaps={report.gaps} unfilled={report.gap_unfilled} connections={report.connections}")

    asyncio.run(main())


def _run_failover(settings: Settings, exchanges: list[str], symbols: list[str]) -> None:
    from producers.failover import FailoverStreamer
    from producers.shutdown import stop_on_signals

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        streamer = FailoverStreamer(settings, exchanges, symbols)
        with stop_on_signals(lambda: loop.call_soon_threadsafe(stop.set)):
            report = await streamer.run(stop)
        for name, provider in report.providers.items():
            typer.echo(f"[{name}] held={provider.live.held} connections={provider.connections}")
            _report(provider.live)
        typer.echo(f"failovers={len(report.switches)} active={streamer.active}")

    asyncio.run(main())


@produce_app.command("live")
def live(
    exchange: Annotated[
        str | None,
        typer.Option(
            help="coinbase, binance, binance_us, binance_futures, kraken, bitstamp, okx, bybit, "
            "bybit_linear, bybit_inverse, bitfinex, polygon."
        ),
    ] = None,
    exchanges: Annotated[
        str | None,
        typer.Option(
            help="Failover: comma-separated exchanges, best first (`coinbase,kraken,bitstamp`); one active "
            "provider per symbol, the next one takes over when it is down."
        ),
    ] = None,
    symbols: SymbolsOption = None,
    ws_url: Annotated[str | None, typer.Option(help="Override the exchange's websocket URL.")] = None,
    rest_url: Annotated[str | None, typer.Option(help="Override the exchange's REST URL (backfill).")] = None,
    metrics_port: MetricsOption = None,
) -> None:
    """Stream trades from an exchange's public websocket feed, or from several with failover (Ctrl-C
    flushes and stops)."""
    names = [n.strip() for n in (exchanges or "").split(",") if n.strip()]
    if (exchange is None) == (not names):
        raise typer.BadParameter("give either --exchange or --exchanges")
    settings = get_settings()
    _serve_metrics(metrics_port, settings)
    try:
        if names:
            _run_failover(settings, names, _symbols(symbols, settings))
        else:
            _run_live(settings, str(exchange), _symbols(symbols, settings), ws_url, rest_url)
    except ValueError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc


def _speed(value: str) -> float | None:
    if value == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        raise typer.BadParameter(f"--speed must be `max` or a number > 0, got {value!r}") from None
    if not speed > 0:
        raise typer.BadParameter(f"--speed must be > 0, got {value!r}")
    return speed


@produce_app.command("replay")
def replay(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or websocket capture file.")],
    format: Annotated[
        str,
        typer.Option("--format", help="auto, capture, coinbase_csv, binance_trades, binance_aggtrades, csv."),
    ] = "auto",
    speed: Annotated[str, typer.Option(help="`max` or N x real time by the file's clock.")] = "max",
    exchange: Annotated[
        str | None, typer.Option(help="Override the exchange (capture parser, Binance market).")
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            help="For --format csv: price=COL,size=COL,time=COL,symbol=COL[,side=COL][,trade_id=COL]."
        ),
    ] = None,
    metrics_port: MetricsOption = None,
) -> None:
    """Replay a recorded file through validation into Kafka, with a progress bar."""
    from producers.replay import FORMATS, CsvColumns, replay_file
    from producers.shutdown import stop_on_signals

    if format not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
    settings = get_settings()
    _serve_metrics(metrics_port, settings)
    try:
        mapping = CsvColumns.parse(columns, exchange or "csv") if columns else None
        with stop_on_signals() as stop:
            stats = replay_file(
                settings, path, format, speed=_speed(speed), exchange=exchange, columns=mapping,
                progress=True, stop=stop,
            )  # fmt: skip
    except ValueError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    _report(stats)


def _run_synthetic(
    settings: Settings, symbols: list[str], rate: float, seed: int, duration: float | None,
    max_ticks: int | None, unpaced: bool,
) -> None:  # fmt: skip
    from producers.shutdown import stop_on_signals
    from producers.synthetic import SyntheticConfig, run_synthetic

    config = SyntheticConfig(tuple(symbols), seed=seed, rate=rate)
    with stop_on_signals() as stop:
        stats = run_synthetic(
            settings,
            config,
            paced=not unpaced,
            duration_s=duration,
            max_ticks=max_ticks,
            progress=True,
            stop=stop,
        )
    _report(stats)


@produce_app.command("synthetic")
def synthetic(
    rate: Annotated[float, typer.Option(help="Mean ticks per second over all symbols.")] = 1000.0,
    symbols: SymbolsOption = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same ticks).")] = 0,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    max_ticks: Annotated[int | None, typer.Option(help="Stop after this many ticks.")] = None,
    unpaced: Annotated[bool, typer.Option(help="As fast as possible instead of --rate per second.")] = False,
    metrics_port: MetricsOption = None,
) -> None:
    """Produce simulated trades (geometric Brownian motion, log-normal sizes, bursts)."""
    settings = get_settings()
    _serve_metrics(metrics_port, settings)
    _run_synthetic(settings, _symbols(symbols, settings), rate, seed, duration, max_ticks, unpaced)


def probe(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when a TCP connection to ``url``'s host and port opens within ``timeout_s``, else the error."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme in ("wss", "https") else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"{parts.hostname}:{port}: {exc}"


@produce_app.command("auto")
def auto(
    exchange: Annotated[str, typer.Option(help="Live exchange to use when the network allows.")] = "coinbase",
    symbols: SymbolsOption = None,
    rate: Annotated[float, typer.Option(help="Ticks per second of the synthetic fallback.")] = 200.0,
    metrics_port: MetricsOption = None,
) -> None:
    """Live public feeds when the exchange answers, else the synthetic source (with a banner saying so)."""
    from producers.exchanges import get_exchange

    settings = get_settings()
    chosen = _symbols(symbols, settings)
    spec = get_exchange(exchange)
    problem = probe(spec.ws_url)
    _serve_metrics(metrics_port, settings)
    if problem is None:
        typer.secho(f"live feed: {spec.name} {spec.ws_url} for {', '.join(chosen)}", fg=typer.colors.GREEN)
        _run_live(settings, spec.name, chosen, None, None)
        return
    banner = (
        f"NO LIVE DATA: {spec.name} is unreachable ({problem}).\n"
        f"Producing SYNTHETIC ticks instead (GBM, seed 0, {rate:g} ticks/s) for {', '.join(chosen)}."
    )
    lines = banner.splitlines()
    width = max(len(line) for line in lines) + 4
    boxed = ["*" * width, *(f"* {line:<{width - 4}} *" for line in lines), "*" * width]
    typer.secho("\n".join(boxed), fg=typer.colors.YELLOW, bold=True, err=True)
    _run_synthetic(settings, chosen, rate, 0, None, None, False)
