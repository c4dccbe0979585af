"""Gap detection on trade ids that count up by one per symbol (Coinbase, Binance, Kraken)."""

from __future__ import annotations

from typing import NamedTuple


class Gap(NamedTuple):
    """Trade ids ``first..last`` (inclusive) of ``symbol`` were never seen."""

    symbol: str
    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


class GapTracker:
    """Remembers the highest trade id per symbol; an id more than one above it reveals a gap.

    Lower or equal ids (re-sent trades, out-of-order delivery) are no gap; the first id of a symbol
    sets the baseline.
    """

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def observe(self, symbol: str, trade_id: int) -> Gap | None:
        """Record ``trade_id`` of ``symbol``; the gap it reveals, if any."""
        last = self._last.get(symbol)
        if last is not None and trade_id <= last:
            return None
        self._last[symbol] = trade_id
        if last is not None and trade_id > last + 1:
            return Gap(symbol, last + 1, trade_id - 1)
        return None
