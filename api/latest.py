"""The latest values of one API process, in memory: price, current bar and indicators per symbol.

Fed by the process's own feeds (``api.ws.kafka_feed`` ticks, ``api.ws.redis_feed`` bar and indicator
revisions), so ``GET /api/v1/latest`` and the WebSocket snapshots answer without a network round trip;
Redis stays the fallback for what this process has not seen since it started.

Change detection: every bar or indicator revision is hashed without its volatile fields (``updated_at``,
the time the job wrote it); a revision whose hash equals the last one seen for the same (kind, symbol,
interval, window_start) is a repeat (a batch re-run, a restarted job) and is reported unchanged, so it is
neither pushed nor stored again. The last ``REVISIONS_REMEMBERED`` windows are remembered per (kind,
symbol, interval).

Everything runs on the event loop (no locks); values are the JSON bytes as published.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from api.models import LatestPrice

REVISIONS_REMEMBERED = 512
VOLATILE_FIELDS = frozenset({"updated_at"})


@dataclass
class _Price:
    price: float  # quote currency
    time_us: int  # event time of the trade, µs since the epoch (UTC)
    body: bytes | None = None  # the LatestPrice JSON, built on first read


@dataclass(frozen=True)
class Revision:
    """The newest revision of a bar or indicator row: its window start (ISO text) and JSON bytes."""

    window_start: str
    data: bytes


class LatestValues:
    """Latest price, bar and indicator row per symbol (and interval), with repeat detection."""

    def __init__(self) -> None:
        self._prices: dict[str, _Price] = {}
        self._current: dict[tuple[str, str, str], Revision] = {}  # (kind, symbol, interval)
        self._seen: dict[tuple[str, str, str], OrderedDict[str, int]] = {}

    # --- prices -----------------------------------------------------------------------------------------

    def offer_price(self, symbol: str, price: float, time_us: int) -> None:
        """Record a traded ``price`` (quote currency) at ``time_us`` (µs since the epoch, UTC) unless a
        later one is known."""
        current = self._prices.get(symbol)
        if current is None or time_us >= current.time_us:
            self._prices[symbol] = _Price(price, time_us)

    def offer_ticks(self, ticks_by_symbol: dict[str, list[bytes]]) -> None:
        """Record the last tick of each symbol of a batch of tick wire records (``tickflow.schemas``)."""
        for symbol, ticks in ticks_by_symbol.items():
            tick = orjson.loads(ticks[-1])
            price, event_time = tick.get("price"), tick.get("event_time")
            if isinstance(price, int | float) and isinstance(event_time, int):
                self.offer_price(symbol, float(price), event_time)

    def price_json(self, symbol: str) -> bytes | None:
        """``LatestPrice`` JSON of ``symbol`` (``source: "memory"``); None when no price was seen."""
        current = self._prices.get(symbol)
        if current is None:
            return None
        if current.body is None:
            time = datetime.fromtimestamp(current.time_us / 1e6, UTC)
            price = LatestPrice(symbol=symbol, price=current.price, time=time, source="memory")
            current.body = price.model_dump_json().encode()
        return current.body

    # --- bars and indicators ----------------------------------------------------------------------------

    def offer(self, kind: str, symbol: str, interval: str, payload: dict[str, Any], data: bytes) -> bool:
        """Record a bar (``kind="bar"``) or indicator row (``"indicators"``) revision; False when it repeats
        the last revision seen of its window (nothing to push). A bar's close also updates the price."""
        window_start = payload.get("window_start")
        if not isinstance(window_start, str):
            return True  # cannot tell; push it, do not store it
        key = (kind, symbol, interval)
        digest = hash(
            orjson.dumps(
                {k: v for k, v in payload.items() if k not in VOLATILE_FIELDS}, option=orjson.OPT_SORT_KEYS
            )
        )
        windows = self._seen.setdefault(key, OrderedDict())
        if windows.get(window_start) == digest:
            return False
        windows[window_start] = digest
        windows.move_to_end(window_start)
        if len(windows) > REVISIONS_REMEMBERED:
            windows.popitem(last=False)
        current = self._current.get(key)
        if current is None or window_start >= current.window_start:
            self._current[key] = Revision(window_start, data)
        if kind == "bar":
            self._offer_bar_close(symbol, payload)
        return True

    def current(self, kind: str, symbol: str, interval: str) -> bytes | None:
        """JSON of the newest revision of the latest window of ``kind``/``symbol``/``interval``."""
        revision = self._current.get((kind, symbol, interval))
        return None if revision is None else revision.data

    def _offer_bar_close(self, symbol: str, bar: dict[str, Any]) -> None:
        close, last_trade = bar.get("close"), bar.get("last_trade_time")
        if not isinstance(close, int | float) or not isinstance(last_trade, str):
            return
        try:
            when = datetime.fromisoformat(last_trade)
        except ValueError:
            return
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        self.offer_price(symbol, float(close), round(when.timestamp() * 1e6))
