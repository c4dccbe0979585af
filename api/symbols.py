"""Which symbols the API serves (REST 404s and the WebSocket whitelist).

A symbol is served when it is listed in ``Settings.symbols``, or, with ``accept_unlisted_symbols`` on, when
it matches ``symbol_pattern`` and PostgreSQL holds bars or ticks of it (the producers accepted it).
Symbols are compared upper-case. A pattern-matching symbol the database does not know is remembered as
unknown for ``api_unknown_symbol_ttl_s``, so naming it again costs no query.
"""

from __future__ import annotations

import asyncio
import re
import time

from api.metrics import ApiMetrics
from api.models import SymbolInfo
from api.store import MarketStore
from tickflow.settings import Settings

DISCOVERY_TTL_S = 30.0
MAX_REMEMBERED = 10_000


class SymbolCatalog:
    """Listed symbols plus unlisted ones found in the data."""

    def __init__(self, settings: Settings, store: MarketStore, metrics: ApiMetrics) -> None:
        self._listed = tuple(dict.fromkeys(s.upper() for s in settings.symbols))
        self._pattern = re.compile(settings.symbol_pattern) if settings.accept_unlisted_symbols else None
        self._store = store
        self._seen: set[str] = set()
        self._unknown: dict[str, float] = {}  # symbol -> monotonic time until which it stays unknown
        self._unknown_ttl_s = settings.api_unknown_symbol_ttl_s
        self._metrics = metrics
        self._pending: dict[str, asyncio.Future[bool]] = {}
        self._discovered: list[str] = []
        self._discovered_at = float("-inf")

    def known_cached(self, symbol: str) -> bool:
        """True when ``symbol`` (normalised) is listed or was found in the data before (no I/O); False
        means "not known yet", not "unknown": ``known`` may still find it."""
        return symbol in self._listed or symbol in self._seen

    async def known(self, symbol: str) -> bool:
        """True when ``symbol`` (normalised, upper-case) is served.

        Raises:
            psycopg2.Error: the database failed while looking up an unlisted symbol.
        """
        if symbol in self._listed or symbol in self._seen:
            return True
        if self._pattern is None or not self._pattern.fullmatch(symbol):
            return False
        if self._unknown.get(symbol, float("-inf")) > time.monotonic():
            return False
        lookup = self._pending.get(symbol)
        if lookup is None:  # one query per symbol however many clients ask at once
            lookup = asyncio.ensure_future(self._look_up(symbol))
            self._pending[symbol] = lookup
            lookup.add_done_callback(lambda _: self._pending.pop(symbol, None))
        return await asyncio.shield(lookup)

    async def _look_up(self, symbol: str) -> bool:
        """Ask the database, and remember the answer (known for good, unknown for the TTL)."""
        self._metrics.symbol_lookups.inc()
        if not await self._store.has_data(symbol):
            now = time.monotonic()
            if len(self._unknown) >= MAX_REMEMBERED:
                self._unknown = {s: until for s, until in self._unknown.items() if until > now}
                if len(self._unknown) >= MAX_REMEMBERED:
                    self._unknown.clear()
            self._unknown[symbol] = now + self._unknown_ttl_s
            return False
        if len(self._seen) >= MAX_REMEMBERED:
            self._seen.clear()
        self._seen.add(symbol)
        return True

    async def all(self) -> list[SymbolInfo]:
        """Listed symbols first, then unlisted symbols with stored bars (refreshed every 30 s)."""
        if self._pattern is not None and time.monotonic() - self._discovered_at > DISCOVERY_TTL_S:
            self._discovered = await self._store.bar_symbols()
            self._discovered_at = time.monotonic()
        unlisted = sorted(
            s
            for s in self._discovered
            if s not in self._listed and self._pattern and self._pattern.fullmatch(s)
        )
        return [SymbolInfo(symbol=s, listed=True) for s in self._listed] + [
            SymbolInfo(symbol=s, listed=False) for s in unlisted
        ]
