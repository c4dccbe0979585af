"""Prometheus metrics of one API process (own registry, served at ``/metrics``) and the HTTP middleware."""

from __future__ import annotations

import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tickflow.latency import LatencySamples, stage_histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ApiMetrics:
    """The API's metrics, registered in a registry of their own (several apps may live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        r = self.registry
        self.requests = Counter(
            "tickflow_api_requests_total", "HTTP requests.", ["method", "route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "tickflow_api_request_duration_seconds",
            "HTTP request latency.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ws_clients = Gauge("tickflow_api_ws_clients", "Connected WebSocket clients.", registry=r)
        self.ws_enqueued = Counter(
            "tickflow_api_ws_messages_total", "Messages queued to WebSocket clients.", ["kind"], registry=r
        )
        self.ws_dropped = Counter(
            "tickflow_api_ws_messages_dropped_total", "Messages dropped for full client queues.", registry=r
        )
        self.ws_slow = Counter(
            "tickflow_api_ws_slow_consumers_total",
            "Slow-consumer events (warned, recovered, closed).",
            ["action"],
            registry=r,
        )
        self.ws_client_errors = Counter(
            "tickflow_api_ws_client_errors_total", "Error replies to client messages.", ["code"], registry=r
        )
        self.ws_refused = Counter(
            "tickflow_api_ws_refused_total",
            "WebSocket connections closed with 1008 for abuse or auth.",
            ["reason"],
            registry=r,
        )
        self.symbol_lookups = Counter(
            "tickflow_api_symbol_lookups_total",
            "Database look-ups of unlisted symbols (the negative cache spares repeated ones).",
            registry=r,
        )
        self.ticks_consumed = Counter(
            "tickflow_api_ticks_consumed_total", "Ticks read from Kafka by the fast path.", registry=r
        )
        self.ticks_rejected = Counter(
            "tickflow_api_ticks_rejected_total",
            "Kafka records of the tick topic that are not JSON objects.",
            registry=r,
        )
        self.pubsub_messages = Counter(
            "tickflow_api_pubsub_messages_total", "Redis pub/sub messages received.", ["kind"], registry=r
        )
        self.stage_latency = stage_histogram(r)
        """``tickflow_stage_latency_seconds{stage}``: ``broker`` (receipt -> Kafka append, the tick feed) and
        ``fast_path`` (Kafka append -> WebSocket send, the client's sender)."""
        self.latency = LatencySamples(self.stage_latency)
        """The same latencies (ms) per symbol, for the stage monitor's windowed rule (``api.resources``)."""


class MetricsMiddleware:
    """Counts HTTP requests and observes their latency per route template (``/api/v1/latest/{symbol}``)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.request_seconds.labels(template).observe(time.perf_counter() - started)
