"""Live streaming: websocket -> exchange parser -> validation -> Kafka, with gap detection and REST backfill.

For exchanges whose trade ids count up by one per symbol, every accepted live trade is checked against the
previous id of its symbol; a jump (typically after a reconnect) is backfilled over REST when the exchange
has a trades endpoint (Coinbase, Binance) and the gap is at most ``Settings.max_backfill_trades``. Backfilled
trades share the live stream's validator, so trades that also arrive live are de-duplicated.

Every live stream keeps rolling source quality per (exchange, symbol) (``producers.quality``); a streamer
that owns its tracker publishes it to Redis and the metrics, one given a shared tracker (failover) leaves
that to the owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import structlog

from producers import metrics
from producers.backfill import RestClient
from producers.exchanges import get_exchange
from producers.gaps import Gap, GapTracker
from producers.kafka_producer import TickProducer
from producers.pipeline import IngestStats, TickPipeline, now_us
from producers.quality import QualityPublisher, QualityTracker
from producers.trades import TradeFields
from producers.validation import TickValidator
from producers.wsclient import ReconnectPolicy, WebSocketClient
from tickflow.schemas import TickSource
from tickflow.settings import Settings

log = structlog.get_logger(__name__)

POLL_INTERVAL_S: Final = 0.5
BACKFILL_DRAIN_TIMEOUT_S: Final = 30.0


@dataclass
class LiveReport:
    """The outcome of a live run: stats of live and backfilled ticks, gaps, and connections made."""

    live: IngestStats
    backfill: IngestStats
    gaps: int
    gap_unfilled: int
    connections: int


class LiveStreamer:
    """Streams the trades of ``symbols`` (normalised, e.g. ``BTC-USD``) from ``exchange`` into
    ``settings.topic_ticks``.

    ``ws_url``/``rest_url`` override the exchange's endpoints (a local replay server in tests, a proxy).
    A ``producer`` passed in is shared and not flushed by ``run``; otherwise one is created and flushed.

    Raises (from the constructor):
        ValueError: unknown exchange, or the exchange needs credentials that are not configured.
    """

    def __init__(
        self,
        settings: Settings,
        exchange: str,
        symbols: Sequence[str],
        *,
        producer: TickProducer | None = None,
        ws_url: str | None = None,
        rest_url: str | None = None,
        quality: QualityTracker | None = None,
    ) -> None:
        self.spec = get_exchange(exchange)
        self._settings = settings
        self._symbols = list(symbols)
        self.spec.subscribe(self._symbols, settings)  # fail early on missing credentials
        self._own_producer = producer is None
        self.producer = producer or TickProducer(settings)
        validator = TickValidator(settings)
        self._own_quality = quality is None
        self.quality = quality or QualityTracker(settings)
        self.live = TickPipeline(
            settings, self.producer, TickSource.LIVE, self.spec.name, validator, self.quality
        )
        self.backfill = TickPipeline(settings, self.producer, TickSource.BACKFILL, self.spec.name, validator)
        self.gaps = 0
        self.gap_unfilled = 0
        self._parse = self.spec.parser()
        self._tracker = GapTracker()
        base = rest_url or self.spec.rest_url
        can_fill = self.spec.fetch_trades is not None and base is not None
        self._rest = RestClient(base, self.spec.rest_min_interval_s) if can_fill and base else None
        self._backfills: set[asyncio.Task[None]] = set()
        policy = ReconnectPolicy(
            idle_timeout_s=settings.ws_idle_timeout_s,
            max_delay_s=settings.ws_reconnect_max_delay_s,
            subscribe_interval_s=settings.ws_subscribe_interval_s,
        )
        self.client = WebSocketClient(
            ws_url or self.spec.ws_url,
            self._on_connect,
            self.on_message,
            policy,
            self.spec.name,
        )

    def _on_connect(self) -> list[str]:
        """On every (re)connect: a fresh parser (channel numbers of the last connection are void) and the
        subscribe messages."""
        self._parse = self.spec.parser()
        return self.spec.subscribe(self._symbols, self._settings)

    @property
    def produced(self) -> int:
        """Ticks produced so far, live and backfilled."""
        return self.live.stats.produced + self.backfill.stats.produced

    def on_message(self, raw: str | bytes, receipt_time: int) -> None:
        """Parse, validate and produce one websocket message; detect gaps among its accepted trades."""
        result = self._parse(raw)
        if not self.spec.sequential_ids or not result.trades:
            self.live.submit(result, raw, receipt_time)
            return
        self.live.submit(result._replace(trades=[]), raw, receipt_time)
        for trade in result.trades:
            if self.live.accept_one(trade, receipt_time, raw):
                self._observe(trade)

    def _observe(self, trade: TradeFields) -> None:
        try:
            trade_id = int(trade["trade_id"])
        except ValueError:
            return
        gap = self._tracker.observe(trade["symbol"], trade_id)
        if gap is None:
            return
        self.gaps += 1
        metrics.GAPS.labels(self.spec.name).inc()
        log.warning(
            "trade id gap", exchange=self.spec.name, symbol=gap.symbol, first=gap.first, last=gap.last
        )
        if self._rest is None or gap.size > self._settings.max_backfill_trades:
            self._unfilled(gap.size)
            self.quality.gap(self.spec.name, gap.symbol, 0, gap.size)
            return
        task = asyncio.get_running_loop().create_task(self._fill(gap))
        self._backfills.add(task)
        task.add_done_callback(self._backfills.discard)

    def _unfilled(self, count: int) -> None:
        self.gap_unfilled += count
        metrics.GAP_UNFILLED.labels(self.spec.name).inc(count)

    async def _fill(self, gap: Gap) -> None:
        assert self._rest is not None and self.spec.fetch_trades is not None
        try:
            trades = await self.spec.fetch_trades(self._rest.get_json, gap.symbol, gap.first, gap.last)
        except Exception as exc:  # network, HTTP or format errors: the gap stays visible in the metrics
            log.error(
                "backfill failed", exchange=self.spec.name, gap=gap, error=f"{type(exc).__name__}: {exc}"
            )
            self._unfilled(gap.size)
            self.quality.gap(self.spec.name, gap.symbol, 0, gap.size)
            return
        found = {t["trade_id"] for t in trades}
        metrics.BACKFILLED.labels(self.spec.name).inc(len(trades))
        self.backfill.submit_trades(trades, now_us())
        if len(found) < gap.size:
            self._unfilled(gap.size - len(found))
        self.quality.gap(self.spec.name, gap.symbol, min(len(found), gap.size), max(0, gap.size - len(found)))
        log.info("gap backfilled", exchange=self.spec.name, gap=gap, fetched=len(trades))

    async def run(self, stop: asyncio.Event) -> LiveReport:
        """Stream until ``stop`` is set, then finish pending backfills and flush. Returns the report."""
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        poller = loop.create_task(self._poll(stop))
        publisher_stop = asyncio.Event()
        publisher = QualityPublisher(self._settings, self.quality)
        publishing = loop.create_task(publisher.run(publisher_stop)) if self._own_quality else None
        try:
            await self.client.run(stop)
        finally:
            if publishing is not None:
                publisher_stop.set()
                await publishing
            if self._backfills:
                await asyncio.wait(set(self._backfills), timeout=BACKFILL_DRAIN_TIMEOUT_S)
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            if self._rest is not None:
                await self._rest.aclose()
            if self._own_producer:
                await asyncio.to_thread(self.producer.flush)
        return LiveReport(
            self.live.finish(started),
            self.backfill.finish(started),
            self.gaps,
            self.gap_unfilled,
            self.client.connections,
        )

    async def _poll(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.producer.poll(0)
            await asyncio.sleep(POLL_INTERVAL_S)
