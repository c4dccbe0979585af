"""The one definition of a valid tick on the producer side, and de-duplication.

A trade (``producers.trades.TradeFields``) is accepted when, in this order:

1. ``exchange`` and ``raw_symbol`` are non-empty strings (``missing_field``; a ``raw_symbol`` longer than
   64 characters is an ``unknown_symbol``), and every field is present (``missing_field``);
2. ``symbol`` is in ``Settings.symbols``, or matches ``Settings.symbol_pattern`` while
   ``accept_unlisted_symbols`` is on (``unknown_symbol``);
3. ``price`` and ``size`` are finite floats > 0 (``bad_price``, ``bad_size``);
4. ``side`` is ``buy``, ``sell`` or ``unknown`` (``bad_side``);
5. ``trade_id`` is a non-empty string of at most 128 characters (``bad_trade_id``);
6. ``event_time`` is an integer (µs since the epoch, UTC) not before 2000-01-01 (``bad_timestamp``), and
   - for live ticks, within ``max_clock_skew_s`` of the receipt time either way (``clock_skew``);
   - for replayed, backfilled and synthetic ticks, not later than receipt time + ``max_clock_skew_s``
     (``bad_timestamp``): history is fine, the future is not;
7. (exchange, symbol, trade_id) was not accepted among the last ``dedup_window`` (at least; at most
   twice as many) trades of that exchange (``duplicate``).

These are the constraints of ``tickflow.schemas.Tick`` (positive finite price and size, non-empty ids,
known side) plus the producer's own (universe, clock, duplicates); the checks are plain comparisons so the
hot path stays fast, and the tests assert that whatever passes here parses as a ``Tick``.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from typing import Any, Final

from producers.trades import DlqReason, TradeFields
from tickflow.schemas import Side
from tickflow.settings import Settings

MIN_EVENT_TIME_US: Final = 946_684_800_000_000  # 2000-01-01T00:00:00Z
MAX_TRADE_ID_CHARS: Final = 128
MAX_RAW_SYMBOL_CHARS: Final = 64
MAX_CACHED_SYMBOLS: Final = 10_000
_INF: Final = float("inf")
_SIDES: Final = frozenset(side.value for side in Side)
_FIELDS: Final = tuple(TradeFields.__annotations__)


class DedupWindow:
    """Remembers at least the last ``size`` keys (at most ``2 * size`` plus one batch), in two
    generations: when the current set is full it becomes the previous one and the oldest generation is
    dropped. Two set look-ups per key, no per-key eviction work (``TickValidator.validate`` does the
    look-ups and inserts itself: it is the hot path)."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.current: set[Hashable] = set()
        self.previous: set[Hashable] = set()

    def rotate_when_full(self) -> None:
        """Start a new generation (the current one becomes the previous one) once ``size`` keys are in the
        current one. ``TickValidator.validate`` calls this after each batch, so a batch may overshoot."""
        if len(self.current) >= self.size:
            self.previous = self.current
            self.current = set()


class TickValidator:
    """Checks trades against the rules of the module docstring and remembers accepted ids.

    One validator must see every path into a topic of one exchange (live and backfill share it) so that
    de-duplication spans them.
    """

    def __init__(self, settings: Settings) -> None:
        self.max_skew_us = round(settings.max_clock_skew_s * 1_000_000)
        self._pattern = re.compile(settings.symbol_pattern) if settings.accept_unlisted_symbols else None
        self._symbols: set[str] = set(settings.symbols)
        self._window_size = settings.dedup_window
        self._windows: dict[str, DedupWindow] = {}

    def check(self, trade: TradeFields, receipt_time: int, live: bool) -> DlqReason | None:
        """None when ``trade`` is valid and new (it is then remembered), else the rejection reason."""
        rejected = self.validate((trade,), receipt_time, live)[1]
        return rejected[0][1] if rejected else None

    def validate(
        self, trades: Iterable[TradeFields], receipt_time: int, live: bool
    ) -> tuple[list[TradeFields], list[tuple[TradeFields, DlqReason]]]:
        """Split ``trades`` into (accepted, [(rejected, reason)]), keeping their order; accepted trades are
        remembered for de-duplication. ``receipt_time`` is µs since the epoch; ``live`` selects the
        clock-skew rule. Never raises. (One loop with the checks inlined: this is the producer's hot path.)
        """
        accepted: list[TradeFields] = []
        rejected: list[tuple[TradeFields, DlqReason]] = []
        accept = accepted.append
        symbols = self._symbols
        skew = self.max_skew_us
        latest = receipt_time + skew
        window_exchange: str | None = None
        current: set[Hashable] = set()
        previous: set[Hashable] = set()
        for trade in trades:
            try:
                exchange = trade["exchange"]
                symbol = trade["symbol"]
                raw_symbol = trade["raw_symbol"]
                price = trade["price"]
                size = trade["size"]
                side = trade["side"]
                trade_id = trade["trade_id"]
                event_time = trade["event_time"]
            except KeyError:
                rejected.append((trade, DlqReason.MISSING_FIELD))
                continue
            if type(exchange) is not str or not exchange or type(raw_symbol) is not str or not raw_symbol:
                reason = DlqReason.MISSING_FIELD
            elif (
                type(symbol) is not str
                or (symbol not in symbols and not self._admit(symbol))
                or len(raw_symbol) > MAX_RAW_SYMBOL_CHARS
            ):
                reason = DlqReason.UNKNOWN_SYMBOL
            elif type(price) is not float or not 0.0 < price < _INF:
                reason = DlqReason.BAD_PRICE
            elif type(size) is not float or not 0.0 < size < _INF:
                reason = DlqReason.BAD_SIZE
            elif type(side) is not str or side not in _SIDES:
                reason = DlqReason.BAD_SIDE
            elif type(trade_id) is not str or not trade_id or len(trade_id) > MAX_TRADE_ID_CHARS:
                reason = DlqReason.BAD_TRADE_ID
            elif type(event_time) is not int or event_time < MIN_EVENT_TIME_US:
                reason = DlqReason.BAD_TIMESTAMP
            elif live and abs(event_time - receipt_time) > skew:
                reason = DlqReason.CLOCK_SKEW
            elif not live and event_time > latest:
                reason = DlqReason.BAD_TIMESTAMP
            else:
                if exchange != window_exchange:
                    window_exchange = exchange
                    window = self._window(exchange)
                    current, previous = window.current, window.previous
                key = (symbol, trade_id)
                if key not in current and key not in previous:  # DedupWindow.add, inlined
                    current.add(key)
                    accept(trade)
                    continue
                reason = DlqReason.DUPLICATE
            rejected.append((trade, reason))
        for window in self._windows.values():
            window.rotate_when_full()
        return accepted, rejected

    def _window(self, exchange: str) -> DedupWindow:
        window = self._windows.get(exchange)
        if window is None:
            window = self._windows[exchange] = DedupWindow(self._window_size)
        return window

    def _admit(self, symbol: str) -> bool:
        if self._pattern is None or not self._pattern.fullmatch(symbol):
            return False
        if len(self._symbols) < MAX_CACHED_SYMBOLS:
            self._symbols.add(symbol)
        return True

    def explain(self, trade: TradeFields, reason: DlqReason, receipt_time: int) -> str:
        """A one-line human-readable detail for a rejection of ``trade`` with ``reason``."""
        values: dict[str, Any] = dict(trade)
        if reason is DlqReason.MISSING_FIELD:
            missing = [name for name in _FIELDS if values.get(name) in (None, "")]
            return f"missing or empty: {', '.join(missing) or 'exchange/raw_symbol of the wrong type'}"
        if reason is DlqReason.CLOCK_SKEW:
            skew_s = (values["event_time"] - receipt_time) / 1e6
            return f"event_time is {skew_s:+.3f} s from receipt time (allowed ±{self.max_skew_us / 1e6:g} s)"
        name = {
            DlqReason.UNKNOWN_SYMBOL: "symbol",
            DlqReason.BAD_PRICE: "price",
            DlqReason.BAD_SIZE: "size",
            DlqReason.BAD_SIDE: "side",
            DlqReason.BAD_TRADE_ID: "trade_id",
            DlqReason.BAD_TIMESTAMP: "event_time",
            DlqReason.DUPLICATE: "trade_id",
        }.get(reason, "trade")
        return f"{reason.value}: {name}={values.get(name, values)!r:.200}"
