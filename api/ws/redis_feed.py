"""Bars, indicators and anomalies from Redis pub/sub to WebSocket subscribers.

The streaming jobs publish every bar revision on ``bars:{symbol}``, indicator updates on
``indicators:{symbol}`` and anomalies on ``anomalies`` (``tickflow.keys``). Every API process subscribes
to all of them, so any number of processes behind one Redis deliver the same pushes. The feed reconnects
with exponential back-off when Redis goes away.

Every bar and indicator revision first goes to the process's ``api.latest.LatestValues`` (the REST latest
values and the WebSocket snapshots); a revision it reports unchanged (the same content as the last one
seen of its window, e.g. a batch re-run) is not pushed at all.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.latest import LatestValues
from api.metrics import ApiMetrics
from api.ws.hub import Hub
from api.ws.protocol import data_frame
from tickflow.keys import ANOMALIES_CHANNEL, bars_channel, indicators_channel

log = structlog.get_logger(__name__)

BARS_PREFIX = bars_channel("")
INDICATORS_PREFIX = indicators_channel("")
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 10.0
_CONFIRMATIONS = 3  # two pattern subscriptions and one channel subscription


class PubSubFeed:
    """Subscribes to the pipeline's pub/sub channels and publishes into the hub."""

    def __init__(self, redis: Redis, hub: Hub, latest: LatestValues, metrics: ApiMetrics) -> None:
        self._redis = redis
        self._hub = hub
        self._latest = latest
        self._metrics = metrics
        self.connected = asyncio.Event()
        self.first_attempt_done = asyncio.Event()  # subscribed, or the first connection attempt failed
        self._confirmed = 0

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after errors."""
        backoff = BACKOFF_MIN_S
        while True:
            pubsub = self._redis.pubsub()
            self._confirmed = 0
            try:
                await pubsub.psubscribe(BARS_PREFIX + "*", INDICATORS_PREFIX + "*")
                await pubsub.subscribe(ANOMALIES_CHANNEL)
                backoff = BACKOFF_MIN_S
                async for message in pubsub.listen():
                    self._dispatch(message)
            except (RedisError, OSError) as exc:
                self.connected.clear()
                self.first_attempt_done.set()
                log.warning("redis pub/sub lost; reconnecting", error=str(exc), retry_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            finally:
                await pubsub.aclose()

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind in ("subscribe", "psubscribe"):
            self._confirmed += 1
            if self._confirmed >= _CONFIRMATIONS:
                self.connected.set()
                self.first_attempt_done.set()
            return
        if kind not in ("message", "pmessage"):
            return
        channel = message["channel"].decode("utf-8", "replace")
        data: bytes = message["data"]
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            payload = None
        if channel == ANOMALIES_CHANNEL:
            label, symbol, interval = "anomaly", _text(payload, "symbol"), None
            topic = ("anomalies", symbol)
        elif channel.startswith(BARS_PREFIX):
            label, symbol, interval = "bar", channel[len(BARS_PREFIX) :], _text(payload, "interval")
            topic = (f"bars:{interval}", symbol)
        elif channel.startswith(INDICATORS_PREFIX):
            label, symbol, interval = (
                "indicators",
                channel[len(INDICATORS_PREFIX) :],
                _text(payload, "interval"),
            )
            topic = (f"indicators:{interval}", symbol)
        else:
            return
        if symbol is None or (label != "anomaly" and interval is None):
            self._metrics.pubsub_messages.labels("invalid").inc()
            log.warning("ignoring pub/sub message without symbol/interval", channel=channel)
            return
        if interval is not None and not self._latest.offer(label, symbol, interval, payload, data):
            self._metrics.pubsub_messages.labels("unchanged").inc()
            return
        self._metrics.pubsub_messages.labels(label).inc()
        self._hub.publish(topic, data_frame(label, symbol, data, interval), label)


def _text(payload: object, field: str) -> str | None:
    value = payload.get(field) if isinstance(payload, dict) else None
    return value if isinstance(value, str) and value else None
