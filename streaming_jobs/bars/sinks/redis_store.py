"""Redis writer: the latest bar per (symbol, interval), the latest price per symbol, and bar revisions on
the per-symbol pub/sub channel (keys and channels from ``tickflow.keys``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson
import redis

from tickflow.keys import bar_key, bars_channel, latest_price_key
from tickflow.schemas import OHLCVBar

# Set KEYS[1] to ARGV[1] with TTL ARGV[3] unless the stored JSON's field ARGV[4] is greater than ARGV[2].
# The compared values are ISO-8601 UTC strings of one format (window starts are whole minutes; price
# times have a fixed width), so string order is time order: a late revision of an older bar never
# replaces a newer bar, and a price never goes back in time.
_SET_IF_NOT_OLDER: Final = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, stored = pcall(cjson.decode, current)
  if ok and type(stored) == 'table' and stored[ARGV[4]] and stored[ARGV[4]] > ARGV[2] then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[3]))
return 1
"""


def iso_utc(value: datetime) -> str:
    """Fixed-width ISO-8601 UTC with microseconds: ``2023-09-05T16:00:00.123456Z``."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LatestPrice:
    """The last traded price of a symbol (quote currency) and its event time (UTC)."""

    symbol: str
    price: float
    time: datetime

    def to_json(self) -> bytes:
        """``{"symbol", "price", "time"}`` with ``time`` as fixed-width ISO-8601 UTC."""
        return orjson.dumps({"symbol": self.symbol, "price": self.price, "time": iso_utc(self.time)})


class RedisBarSink:
    """Writes bar revisions and latest prices with TTLs and publishes every revision."""

    def __init__(
        self, url: str, bar_ttl_s: int, price_ttl_s: int, options: Mapping[str, Any] | None = None
    ) -> None:
        """``options``: keyword arguments of ``Redis.from_url`` (``tickflow.clients.redis_kwargs``); by
        default a 10 s socket timeout."""
        self._client = redis.Redis.from_url(url, **(options or {"socket_timeout": 10}))
        self._set = self._client.register_script(_SET_IF_NOT_OLDER)
        self._bar_ttl_s = bar_ttl_s
        self._price_ttl_s = price_ttl_s

    def write(self, bars: Sequence[OHLCVBar], prices: Sequence[LatestPrice]) -> None:
        """One pipeline: per bar ``SET bars:{symbol}:{interval}`` (unless a newer window is stored)
        and ``PUBLISH bars:{symbol}``; per price ``SET latest_price:{symbol}`` (unless newer).

        Raises:
            redis.RedisError: Redis is unreachable or refused a command.
        """
        pipe = self._client.pipeline(transaction=False)
        for bar in bars:
            data: dict[str, Any] = bar.model_dump(mode="json")
            payload = orjson.dumps(data)
            key = bar_key(bar.symbol, bar.interval)
            args = [payload, data["window_start"], self._bar_ttl_s, "window_start"]
            self._set(keys=[key], args=args, client=pipe)
            pipe.publish(bars_channel(bar.symbol), payload)
        for price in prices:
            key = latest_price_key(price.symbol)
            args = [price.to_json(), iso_utc(price.time), self._price_ttl_s, "time"]
            self._set(keys=[key], args=args, client=pipe)
        pipe.execute()

    def close(self) -> None:
        self._client.close()
