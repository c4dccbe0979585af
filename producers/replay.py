"""Replay recorded trades into Kafka: CSV files and raw websocket captures, through the same parsers and
validation as live data (source ``replay``).

Formats (``fmt``):

- ``capture``: a raw websocket capture, one record a line: ``<receipt unix s>: <raw JSON message>``;
  ``<url> <-> <ts>`` opens a connection (its host names the exchange), ``<url> <- <ts>: <json>`` is a
  message that was sent (skipped). Messages go through the exchange's live parser.
- ``coinbase_csv``: ``symbol,side,price,amount,timestamp`` (ISO-8601 UTC, µs), side = taker side; exchange
  ``coinbase``. The file has no trade id, so the 1-based data row number is the trade id: replaying a file
  twice gives the same ids, and no two trades of a file share one.
- ``binance_trades`` / ``binance_aggtrades``: Binance public-data CSVs (with or without header; times in
  ms before 2025, µs after), symbol from the file name (``BTCUSDT-aggTrades-2024-01-01.csv``).
- ``csv``: any CSV with a header, mapped by ``CsvColumns``.
- ``auto``: guessed from the first line and the file name.

Ticks of one symbol are produced in file order (one producer, key = symbol, idempotent), so they land on
one partition in that order. ``speed=None`` replays as fast as possible; ``speed=N`` paces by event time
(capture time for captures) at N x real time.
"""

from __future__ import annotations

import csv
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, NamedTuple

from tqdm import tqdm

from producers.exchanges import binance, exchange_for_url, get_exchange
from producers.exchanges.common import (
    ParseError,
    epoch_to_us,
    iso_to_us,
    separated_pair,
    to_price,
    to_size,
    to_trade_id,
)
from producers.exchanges.spec import ExchangeSpec
from producers.kafka_producer import TickProducer
from producers.pacing import Pacer
from producers.pipeline import IngestStats, TickPipeline, now_us
from producers.trades import DlqReason, ParseResult, Rejection, TradeFields
from tickflow.schemas import TickSource
from tickflow.settings import Settings

ReplayFormat = Literal["auto", "capture", "coinbase_csv", "binance_trades", "binance_aggtrades", "csv"]
FORMATS: Final[tuple[str, ...]] = ReplayFormat.__args__  # type: ignore[attr-defined]
PROGRESS_EVERY: Final = 2048
_CAPTURE_MESSAGE: Final = re.compile(r"^(\d+(?:\.\d+)?): (.*)$", re.DOTALL)
_CAPTURE_OPEN: Final = re.compile(r"^(\S+) <-> (\d+(?:\.\d+)?)$")
_SIDES: Final = {"buy": "buy", "b": "buy", "sell": "sell", "s": "sell", "unknown": "unknown", "": "unknown"}


@dataclass(frozen=True)
class CsvColumns:
    """How to read a generic trades CSV with a header: the column names of each field.

    ``time`` may hold ISO-8601 text (UTC when no offset) or epoch numbers in s/ms/µs/ns. Without a
    ``symbol`` column every row is ``fixed_symbol``; without ``side`` the side is ``unknown`` (else
    ``buy``/``sell``/``b``/``s``, any case); without ``trade_id`` the 1-based data row number is used.
    """

    price: str
    size: str
    time: str
    exchange: str
    symbol: str | None = None
    fixed_symbol: str | None = None
    side: str | None = None
    trade_id: str | None = None

    def __post_init__(self) -> None:
        if (self.symbol is None) == (self.fixed_symbol is None):
            raise ValueError("give exactly one of `symbol` (a column) and `fixed_symbol`")

    @classmethod
    def parse(cls, spec: str, exchange: str) -> CsvColumns:
        """From ``price=px,size=qty,time=ts,symbol=sym[,side=s][,trade_id=id]`` (or ``fixed_symbol=AAPL``).

        Raises:
            ValueError: unknown keys or missing required ones.
        """
        pairs = dict(item.split("=", 1) for item in spec.split(",") if "=" in item)
        try:
            return cls(exchange=exchange, **{k.strip(): v.strip() for k, v in pairs.items()})
        except TypeError as exc:
            raise ValueError(f"bad column mapping {spec!r}: {exc}") from None


COINBASE_CSV: Final = CsvColumns(
    price="price", size="amount", time="timestamp", symbol="symbol", side="side", exchange="coinbase"
)


class ReplayItem(NamedTuple):
    """One record of a file: what its parser made of it, the raw text, and its pacing time (µs)."""

    result: ParseResult
    raw: str
    clock_us: int | None


def detect_format(path: Path) -> ReplayFormat:
    """Guess the format from the first line and the file name.

    Raises:
        ValueError: the format cannot be told (pass ``fmt`` explicitly).
    """
    with path.open("rb") as f:
        first = f.readline().decode("utf-8", errors="replace").strip()
    if _CAPTURE_OPEN.match(first) or _CAPTURE_MESSAGE.match(first) or " <- " in first:
        return "capture"
    header = [c.strip().strip('"').lower() for c in first.split(",")]
    if header == ["symbol", "side", "price", "amount", "timestamp"]:
        return "coinbase_csv"
    if "-aggtrades-" in path.name.lower():
        return "binance_aggtrades"
    if "-trades-" in path.name.lower():
        return "binance_trades"
    raise ValueError(f"cannot tell the format of {path}; pass one of {', '.join(FORMATS[1:])}")


def _lines(path: Path, bar: tqdm) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without the line break); invalid UTF-8 is kept as ``\\xNN`` escapes so
    the dead letter shows it."""
    pending = 0
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            pending += 1
            if pending == PROGRESS_EVERY:
                bar.update(pending)
                pending = 0
            yield number, line.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
    bar.update(pending)


def _capture_items(lines: Iterator[tuple[int, str]], spec: ExchangeSpec) -> Iterator[ReplayItem]:
    parse = spec.parser()  # one capture, one stream: stateful parsers (Bitfinex) keep their channels
    for number, text in lines:
        if not text.strip() or _CAPTURE_OPEN.match(text) or " <- " in text.split(": ", 1)[0]:
            continue  # blank, a connection opening, or a message that was sent (subscription)
        message = _CAPTURE_MESSAGE.match(text)
        if message is None:
            detail = f"line {number} is not `<unix s>: <message>`"
            rejection = Rejection(DlqReason.MALFORMED, detail, text, spec.name)
            yield ReplayItem(ParseResult([], [rejection]), text, None)
            continue
        clock_us = round(float(message.group(1)) * 1_000_000)
        yield ReplayItem(parse(message.group(2)), message.group(2), clock_us)


def _row_items(
    lines: Iterator[tuple[int, str]], exchange: str, parse_row: Callable[[list[str], int], TradeFields]
) -> Iterator[ReplayItem]:
    """Rows -> items; ``parse_row(cells, data_row_number)`` raises ``ParseError`` for a bad row."""
    row = 0
    for _, text in lines:
        if not text.strip():
            continue
        row += 1
        try:
            cells = next(csv.reader([text]))
        except (csv.Error, StopIteration):
            rejection = Rejection(DlqReason.MALFORMED, "not a CSV row", text, exchange)
            yield ReplayItem(ParseResult([], [rejection]), text, None)
            continue
        try:
            trade = parse_row(cells, row)
        except ParseError as exc:
            yield ReplayItem(ParseResult([], [Rejection(exc.reason, exc.detail, text, exchange)]), text, None)
            continue
        yield ReplayItem(ParseResult([trade], []), text, trade["event_time"])


def _time_us(value: str) -> int:
    text = value.strip()
    return epoch_to_us(text) if text.replace(".", "", 1).isdigit() else iso_to_us(text)


def _csv_row_parser(columns: CsvColumns, header: list[str]) -> Callable[[list[str], int], TradeFields]:
    names = {name.strip(): i for i, name in enumerate(header)}
    wanted = [c for c in (columns.price, columns.size, columns.time, columns.symbol, columns.side,
                          columns.trade_id) if c is not None]  # fmt: skip
    absent = [c for c in wanted if c not in names]
    if absent:
        raise ValueError(f"CSV header {header} lacks columns {absent}")

    def cell(cells: list[str], column: str) -> str:
        index = names[column]
        if index >= len(cells):
            raise ParseError(DlqReason.MISSING_FIELD, f"column {column!r} is missing")
        return cells[index]

    def parse_row(cells: list[str], row: int) -> TradeFields:
        raw_symbol = cell(cells, columns.symbol) if columns.symbol else str(columns.fixed_symbol)
        side_text = cell(cells, columns.side).strip().lower() if columns.side else ""
        if side_text not in _SIDES:
            raise ParseError(DlqReason.BAD_SIDE, f"side {side_text!r} is not buy/sell")
        return {
            "exchange": columns.exchange,
            "symbol": separated_pair(raw_symbol) if raw_symbol else "",
            "raw_symbol": raw_symbol,
            "price": to_price(cell(cells, columns.price)),
            "size": to_size(cell(cells, columns.size)),
            "side": _SIDES[side_text],
            "trade_id": to_trade_id(cell(cells, columns.trade_id)) if columns.trade_id else str(row),
            "event_time": _time_us(cell(cells, columns.time)),
        }

    return parse_row


def _items(
    path: Path,
    fmt: ReplayFormat,
    lines: Iterator[tuple[int, str]],
    exchange: str | None,
    columns: CsvColumns | None,
) -> tuple[str, Iterator[ReplayItem]]:
    """(exchange label, items) of a file in format ``fmt``."""
    if fmt == "capture":
        spec = get_exchange(exchange) if exchange else _capture_exchange(path)
        if spec is None:
            raise ValueError(f"cannot tell the exchange of capture {path}; pass exchange=")
        return spec.name, _capture_items(lines, spec)
    if fmt in ("binance_trades", "binance_aggtrades"):
        name = exchange or binance.SPOT
        kind: binance.CsvKind = "trades" if fmt == "binance_trades" else "aggTrades"
        raw_symbol = binance.symbol_from_filename(path)
        lines = _skip_header(lines)
        return name, _row_items(
            lines, name, lambda cells, _: binance.trade_from_csv_row(name, kind, raw_symbol, cells)
        )
    mapping = COINBASE_CSV if fmt == "coinbase_csv" else columns
    if mapping is None:
        raise ValueError("format `csv` needs a column mapping (CsvColumns)")
    try:
        _, header_text = next(lines)
    except StopIteration:
        return mapping.exchange, iter(())
    header = [c.strip().strip('"') for c in next(csv.reader([header_text]))]
    return mapping.exchange, _row_items(lines, mapping.exchange, _csv_row_parser(mapping, header))


def _skip_header(lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    for number, text in lines:
        if number == 1 and not text[:1].isdigit():
            continue
        yield number, text


def _capture_exchange(path: Path) -> ExchangeSpec | None:
    """From the first connection line's URL, else the file name (``capture_BINANCE_US.ws.1.0`` ->
    ``binance_us``)."""
    with path.open("rb") as f:
        for raw in f:
            opened = _CAPTURE_OPEN.match(raw.decode("utf-8", errors="replace").strip())
            if opened:
                spec = exchange_for_url(opened.group(1))
                if spec is not None:
                    return spec
                break
    name = path.name.removeprefix("capture_").split(".", 1)[0].lower()
    try:
        return get_exchange(name)
    except ValueError:
        return None


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def replay_file(
    settings: Settings,
    path: str | Path,
    fmt: ReplayFormat = "auto",
    *,
    speed: float | None = None,
    exchange: str | None = None,
    columns: CsvColumns | None = None,
    producer: TickProducer | None = None,
    progress: bool = False,
    stop: threading.Event | None = None,
) -> IngestStats:
    """Replay ``path`` into ``settings.topic_ticks`` (rejections into ``settings.topic_dlq``) and flush.

    Args:
        fmt: see the module docstring; ``auto`` guesses.
        speed: ``None`` as fast as possible, else N x real time by the file's clock.
        exchange: overrides the exchange (capture: which parser; Binance CSV: ``binance_futures``).
        columns: the mapping of format ``csv``.
        producer: a shared producer (flushed before returning all the same); default: a new one.
        progress: show a progress bar (rate and ETA) on stderr.
        stop: set it to end the replay early (ticks read so far are still flushed).

    Returns:
        ``IngestStats`` with ``produced``, ``rejected`` by reason, ``delivered`` (records acknowledged by
        the broker, ticks and dead letters of this producer) and ``elapsed_s``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unknown or undetectable format, missing CSV columns, unknown exchange, bad ``speed``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    pacer = Pacer(speed, stop) if speed is not None else None
    started = time.monotonic()
    sink = producer or TickProducer(settings)
    with tqdm(total=_count_lines(path) if progress else None, disable=not progress, unit=" lines",
              desc=path.name, unit_scale=True, dynamic_ncols=True) as bar:  # fmt: skip
        name, items = _items(path, fmt, _lines(path, bar), exchange, columns)
        pipeline = TickPipeline(settings, sink, TickSource.REPLAY, name)
        for item in items:
            if stop is not None and stop.is_set():
                break
            if pacer is not None and item.clock_us is not None:
                pacer.wait(item.clock_us)
            pipeline.submit(item.result, item.raw, now_us())
    sink.flush()
    return pipeline.finish(started)
