"""The producer's tick validator (built from ``tickflow.validity``) and de-duplication.

A trade (``producers.trades.TradeFields``) is accepted when, in this order:

1. every field is present and non-empty (``missing_field``);
2. every rule of ``tickflow.validity.TRADE_FIELD_RULES`` passes (the same table the Spark bar job's checks
   are built from): exchange, symbol and raw_symbol, trade_id as bounded text without control characters,
   price and size finite > 0, side one of ``Side``, event_time integer µs in [2000, 2100);
3. ``symbol`` is in ``Settings.symbols``, or matches ``Settings.symbol_pattern`` while
   ``accept_unlisted_symbols`` is on (``unknown_symbol``);
4. for live ticks, ``event_time`` is within ``max_clock_skew_s`` of the receipt time either way
   (``clock_skew``); for replayed, backfilled and synthetic ticks, not later than receipt time +
   ``max_clock_skew_s`` (``future_event_time``, as the bar job says of it): history is fine, the future
   is not;
5. (exchange, symbol, trade_id) was not accepted among the last ``dedup_window`` (at least; at most
   twice as many) trades of that exchange (``duplicate``).

Whatever passes here parses as a ``tickflow.schemas.Tick`` (the tests assert it).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from typing import Any, Final

from producers.trades import TradeFields
from tickflow.settings import Settings
from tickflow.validity import TRADE_FIELD_RULES, DlqReason

MAX_CACHED_SYMBOLS: Final = 10_000
_FIELDS: Final = tuple(TradeFields.__annotations__)
_RULES: Final = tuple((rule.field, rule.reason, rule.accepts()) for rule in TRADE_FIELD_RULES)


def _field_failure(trade: TradeFields) -> DlqReason | None:
    """``missing_field`` when a field is absent, None or empty, else the reason of the first failing rule of
    ``TRADE_FIELD_RULES``, else None.

    Raises:
        KeyError: a field is absent (the caller reports ``missing_field``).
    """
    values = [trade[name] for name in _FIELDS]  # type: ignore[literal-required]
    if None in values or "" in values:
        return DlqReason.MISSING_FIELD
    for name, why, passes in _RULES:
        if not passes(trade[name]):  # type: ignore[literal-required]
            return why
    return None


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
        clock-skew rule. Never raises.
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
                trade_id = trade["trade_id"]
                event_time = trade["event_time"]
                reason = _field_failure(trade)
            except KeyError:
                rejected.append((trade, DlqReason.MISSING_FIELD))
                continue
            if reason is not None:
                pass  # reported below
            elif symbol not in symbols and not self._admit(symbol):
                reason = DlqReason.UNKNOWN_SYMBOL
            elif live and abs(event_time - receipt_time) > skew:
                reason = DlqReason.CLOCK_SKEW
            elif not live and event_time > latest:
                reason = DlqReason.FUTURE_EVENT_TIME
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
            DlqReason.FUTURE_EVENT_TIME: "event_time",
            DlqReason.DUPLICATE: "trade_id",
        }.get(reason, "trade")
        return f"{reason.value}: {name}={values.get(name, values)!r:.200}"
