"""What one API process holds while it runs: connections, the hub and its feeds; opened by the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
import structlog
from confluent_kafka.admin import AdminClient
from redis.asyncio import Redis

from api.db import Database
from api.latest import LatestValues
from api.metrics import ApiMetrics
from api.store import MarketStore
from api.symbols import SymbolCatalog
from api.ws.hub import Hub
from api.ws.kafka_feed import TickBatch, TickFeed
from api.ws.limits import ConnectionLimits
from api.ws.redis_feed import PubSubFeed
from tickflow.clients import kafka_admin_config, postgres_dsn
from tickflow.lag import GroupLag
from tickflow.latency_monitor import StageMonitor
from tickflow.settings import Settings

log = structlog.get_logger(__name__)

STARTUP_WAIT_S = 10.0
REDIS_TIMEOUT_S = 2.0  # the API's own Redis timeouts are at most this (``store_*_timeout_s`` when lower)


@dataclass
class Resources:
    """Shared state of a running API process (``app.state.resources``)."""

    settings: Settings
    metrics: ApiMetrics
    db: Database
    redis: Redis
    store: MarketStore
    catalog: SymbolCatalog
    hub: Hub
    tick_feed: TickFeed
    pubsub_feed: PubSubFeed
    kafka_admin: AdminClient
    alert_lag: GroupLag
    """The alert service's consumer lag (``/ready``)."""
    limits: ConnectionLimits
    stage_monitor: StageMonitor
    """Judges this process's broker and fast-path latencies every ``anomaly_latency_window_s``."""
    started: float = field(default_factory=time.monotonic)


@contextlib.asynccontextmanager
async def open_resources(settings: Settings, metrics: ApiMetrics) -> AsyncIterator[Resources]:
    """Open pools and clients, start the feeds and the heartbeat, wait (bounded) until the feeds are
    positioned and subscribed, and close everything on exit. A dependency that is down does not stop the
    start: REST falls back or answers 503 and ``/ready`` reports it."""
    db = Database(postgres_dsn(settings), settings.api_db_pool_size, settings.api_db_statement_timeout_ms)
    connect_s = min(REDIS_TIMEOUT_S, settings.store_connect_timeout_s)
    redis = Redis.from_url(
        settings.redis_url,
        socket_timeout=min(REDIS_TIMEOUT_S, settings.store_read_timeout_s),
        socket_connect_timeout=connect_s,
        socket_keepalive=True,
    )
    pubsub_redis = Redis.from_url(  # no read timeout: it waits for messages; keepalive and health checks
        settings.redis_url,
        socket_connect_timeout=connect_s,
        socket_keepalive=True,
        health_check_interval=30,
    )
    latest = LatestValues()
    store = MarketStore(db, redis, settings.intervals, latest)
    hub = Hub(metrics, settings.api_ws_max_subscriptions)
    loop = asyncio.get_running_loop()

    def on_ticks(batch: TickBatch) -> None:
        latest.offer_ticks(batch)
        hub.publish_ticks(batch)

    def deliver(batch: TickBatch) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            loop.call_soon_threadsafe(on_ticks, batch)

    resources = Resources(
        settings=settings,
        metrics=metrics,
        db=db,
        redis=redis,
        store=store,
        catalog=SymbolCatalog(settings, store, metrics),
        limits=ConnectionLimits(settings.api_ws_max_connections, settings.api_ws_max_connections_per_client),
        hub=hub,
        tick_feed=TickFeed(settings, deliver, metrics),
        pubsub_feed=PubSubFeed(pubsub_redis, hub, latest, metrics),
        kafka_admin=AdminClient(kafka_admin_config(settings)),
        alert_lag=GroupLag(
            kafka_admin_config(settings), settings.alert_consumer_group, [settings.topic_anomalies]
        ),
        stage_monitor=StageMonitor(settings, metrics.latency),
    )
    tasks = [
        asyncio.create_task(resources.pubsub_feed.run(), name="pubsub-feed"),
        asyncio.create_task(hub.heartbeat(settings.api_ws_heartbeat_s), name="ws-heartbeat"),
    ]
    resources.tick_feed.start()
    resources.stage_monitor.start()
    try:
        await _wait_for_feeds(resources)
        yield resources
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await anyio.to_thread.run_sync(resources.tick_feed.stop)
        await anyio.to_thread.run_sync(resources.stage_monitor.close)
        await anyio.to_thread.run_sync(resources.alert_lag.close)
        await redis.aclose()
        await pubsub_redis.aclose()
        db.close()


async def _wait_for_feeds(resources: Resources) -> None:
    async def pubsub() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(resources.pubsub_feed.first_attempt_done.wait(), STARTUP_WAIT_S)
        if not resources.pubsub_feed.connected.is_set():
            log.warning("redis pub/sub not subscribed yet; bar pushes start when it is")

    async def ticks() -> None:
        if not await anyio.to_thread.run_sync(resources.tick_feed.positioned.wait, STARTUP_WAIT_S):
            log.warning("tick feed not positioned yet; tick pushes start when it is")

    await asyncio.gather(pubsub(), ticks())
