"""Operational endpoints: ``/health``, ``/live``, ``/ready`` (no API key needed) and ``/metrics`` (a key when
``api_auth`` is on: ``api.guard``). ``/ready`` names a failed check's error type only; the error text,
which may hold host and user names, goes to the log."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable

import anyio
import httpx
import structlog
from confluent_kafka import KafkaException
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import ResourcesDep
from api.models import Check, Health, Readiness
from api.resources import Resources

READY_TIMEOUT_S = 3.0
LAG_TIMEOUT_S = 1.0
REPORTED_ONLY = frozenset({"influx"})
"""Checks shown in ``/ready`` that do not decide readiness (stores the API does not read)."""

log = structlog.get_logger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/live", response_model=dict[str, str])
async def live() -> dict[str, str]:
    """Liveness: the event loop answers."""
    return {"status": "ok"}


@router.get("/health", response_model=Health)
async def health(resources: ResourcesDep) -> Health:
    """The process and its feeds."""
    return Health(
        status="ok",
        uptime_s=round(time.monotonic() - resources.started, 3),
        ws_clients=len(resources.hub.clients),
        tick_feed_positioned=resources.tick_feed.positioned.is_set(),
        pubsub_connected=resources.pubsub_feed.connected.is_set(),
    )


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(resources: ResourcesDep, response: Response) -> Readiness:
    """Readiness: PostgreSQL answers a query, Redis a PING, and the broker knows the tick topic. The
    ``influx`` check (the bar job's InfluxDB endpoint answers ``/health``) is reported only: the API reads
    nothing from it, so its outage does not make the API unready."""
    names = ("postgres", "redis", "kafka", "influx")
    probes = (_postgres(resources), _redis(resources), _kafka(resources), _influx(resources))
    results = await asyncio.gather(*(_check(name, probe) for name, probe in zip(names, probes, strict=True)))
    checks = dict(zip(names, results, strict=True))
    is_ready = all(check.ok for name, check in checks.items() if name not in REPORTED_ONLY)
    if not is_ready:
        response.status_code = 503
    return Readiness(ready=is_ready, checks=checks)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(resources: ResourcesDep) -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(resources.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _check(name: str, probe: Awaitable[str]) -> Check:
    """The outcome of one probe; a failure's detail is its error type (the text is logged only)."""
    started = time.perf_counter()
    try:
        detail, ok = await asyncio.wait_for(probe, READY_TIMEOUT_S), True
    except Exception as exc:  # every failure of a dependency is a failed check, never a 500
        log.warning("readiness check failed", check=name, error=f"{type(exc).__name__}: {exc}")
        detail, ok = f"unavailable ({type(exc).__name__})", False
    return Check(ok=ok, detail=detail, latency_ms=round((time.perf_counter() - started) * 1000, 3))


async def _postgres(resources: Resources) -> str:
    await resources.db.fetch("SELECT 1")
    return "ok"


async def _redis(resources: Resources) -> str:
    await resources.redis.ping()
    return "ok"


async def _influx(resources: Resources) -> str:
    async with httpx.AsyncClient(timeout=READY_TIMEOUT_S) as client:
        answer = await client.get(f"{resources.settings.influx_url.rstrip('/')}/health")
    answer.raise_for_status()
    return "ok"


async def _kafka(resources: Resources) -> str:
    topic = resources.settings.topic_ticks
    list_topics = functools.partial(resources.kafka_admin.list_topics, topic, timeout=READY_TIMEOUT_S)
    metadata = (await anyio.to_thread.run_sync(list_topics)).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise LookupError(f"tick topic {topic!r} not found on the broker")
    return f"topic {topic!r}: {len(metadata.partitions)} partitions; {await _consumer_lag(resources)}"


async def _consumer_lag(resources: Resources) -> str:
    """``consumer lag: <group>/<topic> <records>, ...`` of the alert service's group; never fails the check
    (a lag that cannot be read is reported as unknown). The Spark jobs' lag is on their metrics ports."""
    group = resources.alert_lag.group
    read = functools.partial(resources.alert_lag.read, LAG_TIMEOUT_S)
    try:
        lags = await anyio.to_thread.run_sync(read)
    except KafkaException as exc:
        return f"consumer lag unknown ({type(exc).__name__})"
    if not lags:
        return f"consumer lag: {group} has committed no offsets"
    return "consumer lag: " + ", ".join(
        f"{group}/{topic} {records}" for topic, records in sorted(lags.items())
    )
