"""Snapshot frames of new subscriptions: the current state of each channel, before any live update.

``trades``: the latest price (a ``price`` frame, the ``GET /api/v1/latest`` JSON); ``bars:{interval}``: the
newest revision of the current bar; ``indicators:{interval}``: the latest indicator row; ``anomalies``:
none (they are events). From the process's memory (``api.latest``), else Redis; nothing when neither
knows a value (a Redis outage only costs the snapshot).
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from api.store import MarketStore
from api.ws.client import Topic
from api.ws.protocol import data_frame
from tickflow.keys import bar_key, indicators_key

_KINDS = {"bars": ("bar", bar_key), "indicators": ("indicators", indicators_key)}


class Snapshots:
    """Builds snapshot frames from memory, with Redis values fetched beforehand as the fallback."""

    def __init__(self, store: MarketStore) -> None:
        self._store = store

    async def fallback(self, topics: Iterable[Topic]) -> dict[Topic, bytes]:
        """Redis values (JSON) of the ``topics`` this process holds no value of."""
        latest = self._store.latest
        found: dict[Topic, bytes] = {}
        keyed: list[tuple[Topic, str]] = []
        for topic in topics:
            channel, symbol = topic
            if channel == "trades" and latest.price_json(symbol) is None:
                price = await self._store.cached_price(symbol)
                if price is not None:
                    found[topic] = price.model_dump_json().encode()
            elif ":" in channel:
                prefix, interval = channel.split(":", 1)
                kind, key = _KINDS[prefix]
                if latest.current(kind, symbol, interval) is None:
                    keyed.append((topic, key(symbol, interval)))
        if keyed:
            values = await self._store.redis_values(*(key for _, key in keyed))
            found.update(
                {topic: value for (topic, _), value in zip(keyed, values, strict=True) if _json(value)}
            )
        return found

    def frames(self, topics: Iterable[Topic], fallback: dict[Topic, bytes]) -> list[str]:
        """Snapshot frames of ``topics`` (sorted by channel, then symbol): memory first, else ``fallback``.

        Called with no await between it and the subscription, so no live update can precede them.
        """
        latest = self._store.latest
        frames = []
        for topic in sorted(topics):
            channel, symbol = topic
            if channel == "trades":
                data, kind, interval = latest.price_json(symbol), "price", None
            elif ":" in channel:
                prefix, interval = channel.split(":", 1)
                kind = _KINDS[prefix][0]
                data = latest.current(kind, symbol, interval)
            else:
                continue
            data = data or fallback.get(topic)
            if data is not None:
                frames.append(data_frame(kind, symbol, data, interval, snapshot=True))
        return frames


def _json(value: bytes | None) -> bool:
    """True for a JSON object (a Redis value is spliced into the frame as it is)."""
    if not value:
        return False
    try:
        return isinstance(orjson.loads(value), dict)
    except orjson.JSONDecodeError:
        return False
