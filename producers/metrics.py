"""Prometheus metrics of `tickflow produce` (served on ``Settings.producer_metrics_port``).

Counters are incremented per batch or message, never per tick inside the hot loop.
"""

from __future__ import annotations

from typing import Final

import structlog
from prometheus_client import Counter, Gauge, start_http_server

from tickflow.latency import LatencySamples, default_stage_histogram

log = structlog.get_logger(__name__)

TICKS_IN: Final = Counter(
    "tickflow_producer_ticks_in", "Trades and rejected records read from a source.", ["source", "exchange"]
)
TICKS_OUT: Final = Counter(
    "tickflow_producer_ticks_out", "Validated ticks handed to the Kafka producer.", ["source", "exchange"]
)
REJECTED: Final = Counter(
    "tickflow_producer_rejected",
    "Rejected input by reason (all but `duplicate` are written to the dead-letter topic).",
    ["source", "exchange", "reason"],
)
IGNORED: Final = Counter(
    "tickflow_producer_messages_ignored",
    "Known non-trade messages skipped (order book, heartbeats, acks).",
    ["exchange", "type"],
)
DELIVERED: Final = Counter("tickflow_producer_delivered", "Records acknowledged by the broker.")
DELIVERY_FAILURES: Final = Counter(
    "tickflow_producer_delivery_failures", "Records the broker did not acknowledge.", ["topic", "error"]
)
BACKPRESSURE_WAITS: Final = Counter(
    "tickflow_producer_backpressure_waits", "Times produce() found the local queue full and waited."
)
PRODUCE_LATENCY: Final = Gauge(
    "tickflow_producer_latency_seconds",
    "Produce latency from librdkafka statistics: `queue` (produce() to request) and `request` (broker "
    "round trip), by quantile, over the last statistics window.",
    ["stage", "quantile"],
)
RECONNECTS: Final = Counter(
    "tickflow_producer_ws_reconnects", "Websocket reconnects by cause.", ["exchange", "cause"]
)
GAPS: Final = Counter("tickflow_producer_gaps", "Trade id gaps detected in live streams.", ["exchange"])
BACKFILLED: Final = Counter(
    "tickflow_producer_backfilled", "Trades fetched over REST to fill gaps.", ["exchange"]
)
GAP_UNFILLED: Final = Counter(
    "tickflow_producer_gap_unfilled", "Missing trades the REST backfill could not return.", ["exchange"]
)

SOURCE_SCORE: Final = Gauge(
    "tickflow_source_quality_score",
    "Source quality score 0..1 per exchange and symbol over the rolling window (tickflow.quality).",
    ["exchange", "symbol"],
)
SOURCE_RATE: Final = Gauge(
    "tickflow_source_quality_rate",
    "Rolling rates of a source: dead_letter, duplicate, gap_filled, gap_unfilled (fractions).",
    ["exchange", "symbol", "kind"],
)
SOURCE_STALENESS: Final = Gauge(
    "tickflow_source_staleness_seconds", "Time since a source's last accepted trade.", ["exchange", "symbol"]
)
SOURCE_LATENCY: Final = Gauge(
    "tickflow_source_ingest_latency_seconds",
    "Rolling mean of receipt time - event time of a source's accepted live ticks.",
    ["exchange", "symbol"],
)
FAILOVERS: Final = Counter(
    "tickflow_producer_failovers", "Switches of the active provider of a symbol.", ["symbol", "from", "to"]
)
STAGE_LATENCY: Final = default_stage_histogram()
"""``tickflow_stage_latency_seconds{stage="ingest"}``: event time -> receipt of the oldest tick of each
batch of live or synthetic ticks (one observation per batch)."""
LATENCY: Final = LatencySamples(STAGE_LATENCY)
"""The ingest latencies (ms) per symbol, for the histogram and the windowed rule of the stage monitor
(``tickflow.latency_monitor``, started by the ``tickflow produce`` commands)."""
INGEST_BREACHES: Final = Counter(
    "tickflow_stage_latency_breaches",
    "Batches whose worst tick was past its stage's latency threshold (tickflow.latency), by severity.",
    ["stage", "severity"],
)
ACTIVE_PROVIDER: Final = Gauge(
    "tickflow_producer_active_provider",
    "1 for the provider currently published for a symbol, 0 for its standbys.",
    ["symbol", "exchange"],
)


def serve_metrics(port: int, host: str = "127.0.0.1") -> bool:
    """Start the Prometheus HTTP endpoint on ``host:port`` (``Settings.metrics_bind_host``; port 0:
    disabled); False (logged) when the port is taken."""
    if not port:
        return False
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.warning("metrics endpoint not started", port=port, error=str(exc))
        return False
    return True
