"""Provider failover: several exchanges stream the same symbols, one of them (per symbol) is published.

Every provider (exchange) runs its own ``LiveStreamer`` (connection, parser, validation, de-duplication, gap
backfill, quality) into one shared producer; a gate on its pipelines publishes the trades of a symbol only
from that symbol's *active* provider and holds the others' in a short buffer. Every tick keeps its venue in
``exchange``.

Ranking: the order given (``coinbase,kraken,bitstamp``: coinbase first). A provider is *down* for a symbol
when it has been disconnected for ``failover_down_after_s`` (its reconnects with back-off keep failing), or
has delivered no trade of the symbol for that long while another provider did (silent past the watchdog),
or its quality score (``tickflow.quality``) is below ``failover_min_score``. Checked every
``CHECK_INTERVAL_S``:

- the active provider is down -> the best-ranked healthy one takes over at once;
- a provider ranked above the active one has been healthy and connected for ``failover_hysteresis_s`` ->
  it takes back over (hysteresis: a provider that flaps never stays up long enough to take over).

At a switch the new provider's held trades newer (by event time) than the last published tick of the symbol
are published first, so the interval in which the old provider was failing is covered without a tick lost
or published twice. A switch is logged, counted (``tickflow_producer_failovers_total``), shown by
``tickflow_producer_active_provider`` and published on ``topic_anomalies`` as a ``feed_failover`` anomaly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import orjson
import structlog

from producers import metrics
from producers.kafka_producer import TickProducer
from producers.live import LiveReport, LiveStreamer
from producers.quality import QualityPublisher, QualityTracker
from producers.trades import TradeFields
from tickflow.settings import Settings

log = structlog.get_logger(__name__)

CHECK_INTERVAL_S: Final = 0.1
FEED_FAILOVER: Final = "feed_failover"
"""``anomaly_type`` of a switch (``tickflow.anomaly.AnomalyType.FEED_FAILOVER``)."""


@dataclass(frozen=True)
class Switch:
    """One change of the active provider of ``symbol``; ``at`` monotonic s, ``released`` the held trades
    of the new provider published at the switch."""

    at: float
    symbol: str
    old: str
    new: str
    reason: str
    released: int


@dataclass
class FailoverReport:
    """The outcome of a failover run: each provider's report and the switches, in order."""

    providers: dict[str, LiveReport]
    switches: list[Switch]


@dataclass
class _Provider:
    name: str
    streamer: LiveStreamer
    last_trade: dict[str, float] = field(default_factory=dict)  # symbol -> monotonic s
    held: dict[str, deque[tuple[float, TradeFields]]] = field(default_factory=dict)
    healthy_since: dict[str, float | None] = field(default_factory=dict)


class FailoverStreamer:
    """Streams ``symbols`` from ``exchanges`` (best first), publishing one active provider per symbol.

    ``ws_urls``/``rest_urls`` override endpoints per exchange (local servers in tests); ``clock`` is
    monotonic seconds.

    Raises (from the constructor):
        ValueError: no or repeated exchanges, an unknown one, or missing credentials.
    """

    def __init__(
        self,
        settings: Settings,
        exchanges: Sequence[str],
        symbols: Sequence[str],
        *,
        producer: TickProducer | None = None,
        ws_urls: Mapping[str, str] | None = None,
        rest_urls: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not exchanges or len(set(exchanges)) != len(exchanges):
            raise ValueError(f"give distinct exchanges in order of preference, got {list(exchanges)}")
        self._settings = settings
        self._clock = clock
        self.order = list(exchanges)
        self.symbols = list(symbols)
        self._own_producer = producer is None
        self.producer = producer or TickProducer(settings)
        self.quality = QualityTracker(settings, clock=clock)
        self.providers: dict[str, _Provider] = {}
        for name in self.order:
            streamer = LiveStreamer(
                settings,
                name,
                self.symbols,
                producer=self.producer,
                ws_url=(ws_urls or {}).get(name),
                rest_url=(rest_urls or {}).get(name),
                quality=self.quality,
            )
            gate = self._gate_of(name)
            streamer.live.gate = streamer.backfill.gate = gate
            self.providers[name] = _Provider(name, streamer)
        self.active: dict[str, str] = dict.fromkeys(self.symbols, self.order[0])
        self.switches: list[Switch] = []
        self._last_event: dict[str, int] = {}  # symbol -> event time of its last published tick
        self._started = clock()
        self._hold_s = 2 * settings.failover_down_after_s + settings.failover_hysteresis_s
        for symbol in self.symbols:
            self._show_active(symbol)

    def _gate_of(self, name: str) -> Callable[[list[TradeFields]], list[TradeFields]]:
        def gate(trades: list[TradeFields]) -> list[TradeFields]:
            provider = self.providers[name]
            now = self._clock()
            publish = []
            for trade in trades:
                symbol = trade["symbol"]
                provider.last_trade[symbol] = now
                active = self.active.get(symbol)
                if active is None or active == name:
                    publish.append(trade)
                    self._last_event[symbol] = max(self._last_event.get(symbol, 0), trade["event_time"])
                    continue
                held = provider.held.setdefault(symbol, deque())
                held.append((now, trade))
                while held and now - held[0][0] > self._hold_s:
                    held.popleft()
            return publish

        return gate

    def down_reason(self, name: str, symbol: str, now: float) -> str | None:
        """Why provider ``name`` is down for ``symbol`` (``disconnected``, ``silent``, ``low_quality``), or
        None when it is healthy."""
        settings = self._settings
        limit = settings.failover_down_after_s
        provider = self.providers[name]
        client = provider.streamer.client
        if not client.connected and now - max(client.changed_at, self._started) >= limit:
            return "disconnected"
        since = max(provider.last_trade.get(symbol, self._started), client.changed_at, self._started)
        if now - since >= limit and any(
            now - other.last_trade.get(symbol, float("-inf")) < limit
            for other in self.providers.values()
            if other is not provider
        ):
            return "silent"
        if settings.failover_min_score > 0:
            record = self.quality.quality(name, symbol)
            if record is not None and record.trades and record.score < settings.failover_min_score:
                return "low_quality"
        return None

    def check(self) -> None:
        """Re-evaluate every symbol's providers and switch where the rules say so (module docstring)."""
        now = self._clock()
        for symbol in self.symbols:
            reasons = {name: self.down_reason(name, symbol, now) for name in self.order}
            for name, reason in reasons.items():
                since = self.providers[name].healthy_since
                if reason is not None:
                    since[symbol] = None
                elif since.get(symbol) is None:
                    since[symbol] = now
            current = self.active[symbol]
            if reasons[current] is not None:
                best = next((n for n in self.order if n != current and self._eligible(n, reasons)), None)
                if best is not None:
                    self._switch(symbol, current, best, reasons[current] or "down", now)
                continue
            for name in self.order[: self.order.index(current)]:
                healthy_since = self.providers[name].healthy_since.get(symbol)
                if healthy_since is None or not self._eligible(name, reasons):
                    continue
                streak_since = max(healthy_since, self.providers[name].streamer.client.changed_at)
                if now - streak_since >= self._settings.failover_hysteresis_s:
                    self._switch(symbol, current, name, "recovered", now)
                    break

    def _eligible(self, name: str, reasons: Mapping[str, str | None]) -> bool:
        """May take a symbol over: healthy and connected now (a provider within its disconnect grace is not
        down yet, but is no candidate either; a reconnect starts a new healthy streak)."""
        return reasons[name] is None and self.providers[name].streamer.client.connected

    def _switch(self, symbol: str, old: str, new: str, reason: str, now: float) -> None:
        self.active[symbol] = new
        provider = self.providers[new]
        held = provider.held.pop(symbol, deque())
        last = self._last_event.get(symbol, 0)
        release = [trade for _, trade in held if trade["event_time"] > last]
        if release:
            provider.streamer.live.produce_accepted(release)
            self._last_event[symbol] = max(t["event_time"] for t in release)
        switch = Switch(now, symbol, old, new, reason, len(release))
        self.switches.append(switch)
        metrics.FAILOVERS.labels(symbol, old, new).inc()
        self._show_active(symbol)
        log.warning("feed failover", symbol=symbol, old=old, new=new, reason=reason, released=len(release))
        self._publish_anomaly(switch)

    def _show_active(self, symbol: str) -> None:
        for name in self.order:
            metrics.ACTIVE_PROVIDER.labels(symbol, name).set(1 if self.active[symbol] == name else 0)

    def _publish_anomaly(self, switch: Switch) -> None:
        """A ``feed_failover`` record on ``topic_anomalies`` (the shape of the anomaly topic)."""
        moment = datetime.now(UTC).isoformat()
        record = {
            "anomaly_type": FEED_FAILOVER,
            "severity": "warning",
            "symbol": switch.symbol,
            "interval": "tick",
            "event_time": moment,
            "value": float(self.order.index(switch.new)),
            "threshold": float(self._settings.failover_down_after_s),
            "details": {
                "from": switch.old,
                "to": switch.new,
                "reason": switch.reason,
                "released": switch.released,
                "order": self.order,
            },
            "detected_at": moment,
        }
        self.producer.send(self._settings.topic_anomalies, orjson.dumps(record), switch.symbol.encode())

    async def run(self, stop: asyncio.Event) -> FailoverReport:
        """Stream until ``stop`` is set; then flush (when the producer is this streamer's own)."""
        loop = asyncio.get_running_loop()
        quiet = asyncio.Event()
        publisher = loop.create_task(QualityPublisher(self._settings, self.quality).run(quiet))
        checker = loop.create_task(self._check_until(stop))
        try:
            reports = await asyncio.gather(*(p.streamer.run(stop) for p in self.providers.values()))
        finally:
            checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checker
            quiet.set()
            await publisher
            if self._own_producer:
                await asyncio.to_thread(self.producer.flush)
        return FailoverReport(dict(zip(self.order, reports, strict=True)), self.switches)

    async def _check_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.check()
            await asyncio.sleep(CHECK_INTERVAL_S)
