"""The REST API's reads: memory, then Redis for the latest values; PostgreSQL for history and as the fallback.

Latest values this process saw on its feeds are in ``api.latest.LatestValues`` (no network round trip).
Redis keys are those of ``tickflow.keys`` written by the streaming jobs; a missing, unparsable or
unreachable Redis value falls back to PostgreSQL. After a Redis error the store skips Redis for
``REDIS_RETRY_S`` so an outage costs one timeout, not one per request.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.db import Database
from api.latest import LatestValues
from api.models import LatestPrice
from api.pagination import Row, Window, merge_cached, next_cursor, to_utc
from api.queries import DISTINCT_BAR_SYMBOLS, HAS_DATA, LATEST_BAR_CLOSE, LATEST_TICK, TableSpec, page_query
from tickflow.keys import bar_key, latest_price_key
from tickflow.schemas import OHLCVBar

log = structlog.get_logger(__name__)

REDIS_RETRY_S = 5.0

M = TypeVar("M", bound=BaseModel)


class _CachedPrice(BaseModel):
    """The ``latest_price:{symbol}`` value."""

    price: float
    time: datetime


class MarketStore:
    """Reads of prices, ticks, bars, indicators, anomalies and predictions."""

    def __init__(
        self, db: Database, redis: Redis, bar_intervals: Sequence[str], latest: LatestValues
    ) -> None:
        self._db = db
        self._redis = redis
        self.latest = latest
        self._finest_interval = bar_intervals[0]
        self._redis_down_until = 0.0

    async def redis_values(self, *keys: str) -> list[bytes | None]:
        """``MGET keys``; all None while Redis is marked down."""
        if time.monotonic() < self._redis_down_until:
            return [None] * len(keys)
        try:
            return await self._redis.mget(keys)
        except RedisError as exc:
            log.warning(
                "redis read failed; falling back to PostgreSQL", error=str(exc), retry_s=REDIS_RETRY_S
            )
            self._redis_down_until = time.monotonic() + REDIS_RETRY_S
            return [None] * len(keys)

    async def latest_price(self, symbol: str) -> LatestPrice | None:
        """Latest price: from memory (``source="memory"``), else ``latest_price:{symbol}``, else the close of
        the cached finest bar, else the latest stored tick, else the latest stored bar's close; None when
        there is none."""
        body = self.latest.price_json(symbol)
        if body is not None:
            return LatestPrice.model_validate_json(body)
        price = await self.cached_price(symbol)
        if price is not None:
            return price
        params = {"symbol": symbol, "interval": self._finest_interval}
        for query in (LATEST_TICK, LATEST_BAR_CLOSE):
            rows = await self._db.fetch(query, params)
            if rows:
                return LatestPrice(symbol=symbol, source="postgres", **rows[0])
        return None

    async def cached_price(self, symbol: str) -> LatestPrice | None:
        """Latest price from Redis: ``latest_price:{symbol}``, else the close of the cached finest bar."""
        raw_price, raw_bar = await self.redis_values(
            latest_price_key(symbol), bar_key(symbol, self._finest_interval)
        )
        cached = _parse(_CachedPrice, raw_price, latest_price_key(symbol))
        if cached is not None:
            return LatestPrice(symbol=symbol, price=cached.price, time=to_utc(cached.time), source="redis")
        bar = _parse(OHLCVBar, raw_bar, bar_key(symbol, self._finest_interval))
        if bar is not None:
            return LatestPrice(
                symbol=symbol, price=bar.close, time=to_utc(bar.last_trade_time), source="redis"
            )
        return None

    async def page(
        self,
        spec: TableSpec,
        filters: dict[str, Any],
        window: Window,
        cached: tuple[type[BaseModel], str] | None = None,
        in_memory: bytes | None = None,
    ) -> tuple[list[Row], str | None]:
        """One page of ``spec.table`` and the cursor of the next page (None on the last page).

        ``cached`` names the model and Redis key of the latest row, merged over the stored rows; the JSON
        ``in_memory`` (the row as this process last saw it on pub/sub) is used instead of Redis when given.

        Raises:
            InvalidCursorError: the window's cursor does not fit this table.
            psycopg2.Error: the database failed.
        """
        query, params = page_query(spec, filters, window)
        rows = await self._db.fetch(query, params)
        has_more = len(rows) > window.limit
        rows = rows[: window.limit]
        if cached is not None:
            model, key = cached
            (raw,) = (in_memory,) if in_memory is not None else await self.redis_values(key)
            latest = _parse(model, raw, key)
            if latest is not None:
                rows, has_more = merge_cached(rows, has_more, _utc_row(latest), spec.key_columns, window)
        return rows, next_cursor(rows, has_more, spec.key_columns)

    async def has_data(self, symbol: str) -> bool:
        """True when PostgreSQL holds bars or ticks of ``symbol``."""
        rows = await self._db.fetch(HAS_DATA, {"symbol": symbol})
        return bool(rows[0]["found"])

    async def bar_symbols(self) -> list[str]:
        """Distinct symbols of the stored bars."""
        return [row["symbol"] for row in await self._db.fetch(DISTINCT_BAR_SYMBOLS)]


def _parse(model: type[M], raw: bytes | None, key: str) -> M | None:
    if raw is None:
        return None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        log.warning("ignoring unparsable redis value", key=key, error=str(exc).splitlines()[0])
        return None


def _utc_row(model: BaseModel) -> Row:
    return {k: to_utc(v) if isinstance(v, datetime) else v for k, v in model.model_dump().items()}
