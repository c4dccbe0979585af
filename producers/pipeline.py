"""Validation in front of the producer: parsed input in, ticks on ``topic_ticks`` and dead letters on
``topic_dlq`` out, with statistics and metrics.

Every source (live, backfill, replay, synthetic) ends here, so every tick is checked by the same
``TickValidator`` and serialised the same way: ``orjson`` of the trade's fields plus ``v``,
``receipt_time`` and ``source`` — exactly the ``tickflow.schemas.Tick`` wire format, key = symbol (UTF-8).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson

from producers import metrics
from producers.kafka_producer import TickProducer
from producers.quality import QualityTracker
from producers.trades import DlqReason, ParseResult, Rejection, TradeFields, raw_text
from producers.validation import TickValidator
from tickflow.dead_letter import PRODUCER_STAGE, DeadLetter
from tickflow.latency import Stage, latency_rules
from tickflow.schemas import TICK_SCHEMA_VERSION, TickSource
from tickflow.settings import Settings


def now_us() -> int:
    """Wall-clock time in µs since the epoch, UTC."""
    return time.time_ns() // 1_000


@dataclass
class IngestStats:
    """What a source run did. ``produced`` ticks went to ``topic_ticks``; ``rejected`` counts by reason
    (all but ``duplicate`` also went to ``topic_dlq``); ``held`` valid ticks a failover gate kept back (a
    standby provider's); ``delivered``/``delivery_failures`` are broker acknowledgements of both topics,
    final once the producer was flushed."""

    source: str
    messages: int = 0
    trades_in: int = 0
    produced: int = 0
    ignored: int = 0
    held: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    delivered: int = 0
    delivery_failures: int = 0
    elapsed_s: float = 0.0

    @property
    def duplicates(self) -> int:
        """Trades dropped as duplicates (counted, not dead-lettered)."""
        return self.rejected[DlqReason.DUPLICATE.value]

    @property
    def dead_lettered(self) -> int:
        """Records written to the dead-letter topic."""
        return sum(self.rejected.values()) - self.duplicates

    @property
    def rate(self) -> float:
        """Produced ticks per second of ``elapsed_s``."""
        return self.produced / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        """One line for people: ``source=replay produced=5882 ... rate=11200/s``."""
        rejected = ",".join(f"{reason}:{n}" for reason, n in sorted(self.rejected.items())) or "-"
        return " ".join(
            [
                f"source={self.source} produced={self.produced} delivered={self.delivered}",
                f"failed={self.delivery_failures} dead_lettered={self.dead_lettered}",
                f"duplicates={self.duplicates} ignored={self.ignored} rejected={rejected}",
                f"elapsed={self.elapsed_s:.1f}s rate={self.rate:.0f}/s",
            ]
        )


class TickPipeline:
    """Validates parsed trades of one source and exchange and hands them to a ``TickProducer``.

    Pipelines that feed the same exchange (live and backfill) must share one ``validator`` so that
    de-duplication spans both. A ``gate`` (failover) receives the validated, completed trades of each batch
    and returns those to produce now; it keeps the others (counted as ``held``) and may release them later
    with ``produce_accepted``.
    """

    def __init__(
        self,
        settings: Settings,
        producer: TickProducer,
        source: TickSource,
        exchange: str,
        validator: TickValidator | None = None,
        quality: QualityTracker | None = None,
    ) -> None:
        self.validator = validator or TickValidator(settings)
        self.quality = quality
        self.gate: Callable[[list[TradeFields]], list[TradeFields]] | None = None
        self.last_accepted = 0
        self.stats = IngestStats(source.value)
        self._producer = producer
        self._source = source
        self._exchange = exchange
        self._topic = settings.topic_ticks
        self._dlq_topic = settings.topic_dlq
        self._live = source is TickSource.LIVE
        self._timed = source in (TickSource.LIVE, TickSource.SYNTHETIC)
        self._ingest_rule = latency_rules(settings)[Stage.INGEST]
        self._out = metrics.TICKS_OUT.labels(source.value, exchange)
        self._in = metrics.TICKS_IN.labels(source.value, exchange)

    def submit(self, result: ParseResult, raw: str | bytes, receipt_time: int) -> int:
        """Handle one parsed message: count it, dead-letter its rejections, validate and produce its trades.

        ``raw`` is the message as received (kept in dead letters); ``receipt_time`` µs since the epoch.
        Returns the number of ticks produced. Never raises on bad input.
        """
        self.stats.messages += 1
        if result.ignored is not None:
            self.stats.ignored += 1
            metrics.IGNORED.labels(self._exchange, result.ignored).inc()
        for rejection in result.rejects:
            self.reject(rejection, receipt_time)
        self.stats.trades_in += len(result.rejects)
        self._in.inc(len(result.rejects))
        return self.submit_trades(result.trades, receipt_time, raw) if result.trades else 0

    def submit_trades(
        self, trades: Iterable[TradeFields], receipt_time: int, raw: str | bytes | None = None
    ) -> int:
        """Validate and produce ``trades`` (the dicts are completed in place and must not be reused).

        ``raw`` is the payload they came from, for dead letters (default: each trade's JSON).
        Returns the number of ticks produced.
        """
        accepted, rejected = self.validator.validate(trades, receipt_time, self._live)
        if self.quality is not None and accepted:
            self.quality.accepted(accepted, receipt_time, self._live)
        source = self._source.value
        for trade in accepted:
            trade["v"] = TICK_SCHEMA_VERSION  # type: ignore[typeddict-unknown-key]
            trade["receipt_time"] = receipt_time  # type: ignore[typeddict-unknown-key]
            trade["source"] = source  # type: ignore[typeddict-unknown-key]
        self.last_accepted = len(accepted)
        if self._timed and accepted:
            self._observe_ingest(accepted, receipt_time)
        if self.gate is not None and accepted:
            sending = self.gate(accepted)
            self.stats.held += len(accepted) - len(sending)
        else:
            sending = accepted
        for trade, reason in rejected:
            self._reject_trade(trade, reason, receipt_time, raw)
        seen = len(accepted) + len(rejected)
        self.stats.trades_in += seen
        self._in.inc(seen)
        return self.produce_accepted(sending)

    def _observe_ingest(self, trades: list[TradeFields], receipt_time: int) -> None:
        """Ingest latency (event time -> receipt, µs -> ms) of a batch's oldest trade: one observation a
        batch, for the histogram and the stage monitor's windowed rule (per symbol), and a breach counted
        when it is past ``anomaly_ingest_latency_ms``."""
        oldest = min(trades, key=lambda trade: trade["event_time"])
        latency_ms = (receipt_time - oldest["event_time"]) / 1000
        metrics.LATENCY.observe(Stage.INGEST, oldest["symbol"], latency_ms)
        severity = self._ingest_rule.severity(latency_ms)
        if severity is not None:
            metrics.INGEST_BREACHES.labels(Stage.INGEST.value, severity).inc()

    def produce_accepted(self, trades: list[TradeFields]) -> int:
        """Send trades this pipeline already validated and completed (a gate's held trades, released);
        returns how many."""
        keys = [trade["symbol"].encode() for trade in trades]
        self._producer.send_many(self._topic, map(orjson.dumps, trades), keys)
        self.stats.produced += len(trades)
        self._out.inc(len(trades))
        return len(trades)

    def accept_one(self, trade: TradeFields, receipt_time: int, raw: str | bytes | None = None) -> bool:
        """``submit_trades`` for a single trade; True when it passed validation (produced, or held by the
        gate)."""
        self.submit_trades((trade,), receipt_time, raw)
        return self.last_accepted == 1

    def _reject_trade(
        self, trade: TradeFields, reason: DlqReason, receipt_time: int, raw: str | bytes | None
    ) -> None:
        text = raw_text(raw) if raw is not None else orjson.dumps(trade, default=repr).decode()
        detail = self.validator.explain(trade, reason, receipt_time)
        exchange = trade.get("exchange")
        symbol = trade.get("symbol")
        self.reject(
            Rejection(
                reason,
                detail,
                text,
                exchange if isinstance(exchange, str) and exchange else self._exchange,
                symbol if reason is not DlqReason.UNKNOWN_SYMBOL and isinstance(symbol, str) else None,
            ),
            receipt_time,
            normalised=True,
        )

    def reject(self, rejection: Rejection, receipt_time: int, normalised: bool = False) -> None:
        """Count ``rejection`` and, unless it is a duplicate, write its dead-letter record.

        ``normalised``: its symbol is a normalised one (a rejected trade), not the parser's spelling."""
        self.stats.rejected[rejection.reason.value] += 1
        if self.quality is not None:
            if rejection.reason is DlqReason.DUPLICATE and rejection.symbol is not None:
                self.quality.duplicate(rejection.exchange, rejection.symbol)
            elif rejection.reason is not DlqReason.DUPLICATE:
                self.quality.dead_letter(rejection.exchange, rejection.symbol, normalised)
        metrics.REJECTED.labels(self._source.value, self._exchange, rejection.reason.value).inc()
        if rejection.reason is not DlqReason.DUPLICATE:
            record = DeadLetter.of(
                PRODUCER_STAGE,
                rejection.reason,
                rejection.detail,
                rejection.raw,
                source=self._source,
                exchange=rejection.exchange,
                symbol=rejection.symbol,
                received_at=receipt_time,
            )
            self._producer.send(self._dlq_topic, record.to_wire(), record.key() or b"")

    def finish(self, started: float) -> IngestStats:
        """Stats with delivery counts of the (flushed) producer and the time since ``started``
        (``time.monotonic()``)."""
        self.stats.delivered = self._producer.delivered
        self.stats.delivery_failures = self._producer.failed
        self.stats.elapsed_s = time.monotonic() - started
        return self.stats
