"""Rolling source quality per (exchange, symbol) of live streams, published to Redis and Prometheus.

``QualityTracker`` counts, in ``bucket_s`` buckets over ``Settings.quality_window_s``, what the live
pipelines did with each source's trades (accepted, duplicates, dead letters), the gaps filled and unfilled,
the ingest latency of accepted ticks and the time of the last one; ``snapshot`` turns them into
``tickflow.quality.SourceQuality`` records with the documented score. ``QualityPublisher`` writes them every
``Settings.quality_publish_interval_s`` to Redis (``source_quality:{exchange}:{symbol}``, with TTL) and to the
``tickflow_source_quality_*`` gauges. Dead letters that name no symbol the exchange has delivered are
counted under symbol ``*``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

import structlog
from redis.asyncio import Redis

from producers import metrics
from producers.trades import TradeFields
from tickflow.quality import SourceQuality, quality_score, source_quality_key
from tickflow.settings import Settings

log = structlog.get_logger(__name__)

ANY_SYMBOL: Final = "*"
REDIS_TIMEOUT_S: Final = 2.0


@dataclass
class _Bucket:
    start: int  # bucket number: monotonic seconds // bucket_s
    accepted: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    gaps_filled: int = 0
    gaps_unfilled: int = 0
    latency_ms_sum: float = 0.0
    latency_n: int = 0


class QualityTracker:
    """Rolling counts per (exchange, symbol); ``clock`` is monotonic seconds (injectable for tests)."""

    def __init__(
        self, settings: Settings, bucket_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ):
        self.window_s = settings.quality_window_s
        self.stale_after_s = settings.quality_stale_after_s
        self.latency_budget_ms = settings.quality_latency_budget_ms
        self._bucket_s = min(bucket_s, self.window_s)
        self._clock = clock
        self._buckets: dict[tuple[str, str], deque[_Bucket]] = {}
        self._last_trade: dict[tuple[str, str], float] = {}

    def _bucket(self, exchange: str, symbol: str) -> _Bucket:
        now = self._clock()
        number = int(now // self._bucket_s)
        buckets = self._buckets.setdefault((exchange, symbol), deque())
        if not buckets or buckets[-1].start != number:
            buckets.append(_Bucket(number))
        oldest = number - int(self.window_s // self._bucket_s)
        while buckets[0].start <= oldest:
            buckets.popleft()
        return buckets[-1]

    def accepted(self, trades: Iterable[TradeFields], receipt_time: int, live: bool) -> None:
        """Trades that became ticks; ``live`` ones also give ingest latency (receipt - event time)."""
        now = self._clock()
        for trade in trades:
            key = (trade["exchange"], trade["symbol"])
            bucket = self._bucket(*key)
            bucket.accepted += 1
            if live:
                bucket.latency_ms_sum += (receipt_time - trade["event_time"]) / 1000
                bucket.latency_n += 1
            self._last_trade[key] = now

    def duplicate(self, exchange: str, symbol: str) -> None:
        """A trade dropped as a duplicate."""
        self._bucket(exchange, symbol).duplicates += 1

    def dead_letter(self, exchange: str, symbol: str | None, normalised: bool = False) -> None:
        """A rejected message or trade. ``symbol`` is normalised (a rejected trade) or as the parser saw it
        (a rejected message): the latter counts only when the exchange delivered it, else as ``*``."""
        if symbol is None or (not normalised and (exchange, symbol) not in self._buckets):
            symbol = ANY_SYMBOL
        self._bucket(exchange, symbol).dead_letters += 1

    def gap(self, exchange: str, symbol: str, filled: int, unfilled: int) -> None:
        """A trade-id gap: ``filled`` trades came from the REST backfill, ``unfilled`` never will."""
        bucket = self._bucket(exchange, symbol)
        bucket.gaps_filled += filled
        bucket.gaps_unfilled += unfilled

    def last_trade_age(self, exchange: str, symbol: str) -> float | None:
        """Seconds since the last accepted trade of ``symbol`` on ``exchange`` (None: none yet)."""
        last = self._last_trade.get((exchange, symbol))
        return None if last is None else self._clock() - last

    def snapshot(self) -> list[SourceQuality]:
        """The quality of every (exchange, symbol) seen in the window."""
        updated_at = time.time_ns() // 1_000
        records = []
        for exchange, symbol in list(self._buckets):
            record = self.quality(exchange, symbol, updated_at)
            if record is not None:
                records.append(record)
        return records

    def quality(self, exchange: str, symbol: str, updated_at: int | None = None) -> SourceQuality | None:
        """The quality of one source (None when it has nothing in the window)."""
        if (exchange, symbol) not in self._buckets:
            return None
        self._bucket(exchange, symbol)  # drop buckets that left the window
        buckets = self._buckets[(exchange, symbol)]
        total = _Bucket(0)
        for b in buckets:
            total.accepted += b.accepted
            total.duplicates += b.duplicates
            total.dead_letters += b.dead_letters
            total.gaps_filled += b.gaps_filled
            total.gaps_unfilled += b.gaps_unfilled
            total.latency_ms_sum += b.latency_ms_sum
            total.latency_n += b.latency_n
        trades = total.accepted + total.duplicates + total.dead_letters
        expected = trades + total.gaps_unfilled + total.gaps_filled
        age = self.last_trade_age(exchange, symbol)
        latency = total.latency_ms_sum / total.latency_n if total.latency_n else None
        rates = {
            "dead_letter_rate": total.dead_letters / trades if trades else 0.0,
            "duplicate_rate": total.duplicates / trades if trades else 0.0,
            "gap_filled_rate": total.gaps_filled / expected if expected else 0.0,
            "gap_unfilled_rate": total.gaps_unfilled / expected if expected else 0.0,
        }
        score = quality_score(
            staleness_s=self.stale_after_s if age is None else age,
            ingest_latency_ms=latency or 0.0,
            stale_after_s=self.stale_after_s,
            latency_budget_ms=self.latency_budget_ms,
            **rates,
        )
        return SourceQuality(
            exchange=exchange,
            symbol=symbol,
            window_s=self.window_s,
            trades=trades,
            accepted=total.accepted,
            duplicates=total.duplicates,
            dead_letters=total.dead_letters,
            gaps_filled=total.gaps_filled,
            gaps_unfilled=total.gaps_unfilled,
            staleness_s=None if age is None else round(age, 3),
            ingest_latency_ms=None if latency is None else round(latency, 3),
            score=score,
            updated_at=updated_at if updated_at is not None else time.time_ns() // 1_000,
            **{k: round(v, 6) for k, v in rates.items()},
        )


def export_metrics(records: Iterable[SourceQuality]) -> None:
    """Set the ``tickflow_source_quality_*`` gauges of ``records``."""
    for r in records:
        metrics.SOURCE_SCORE.labels(r.exchange, r.symbol).set(r.score)
        for kind in ("dead_letter", "duplicate", "gap_filled", "gap_unfilled"):
            metrics.SOURCE_RATE.labels(r.exchange, r.symbol, kind).set(getattr(r, f"{kind}_rate"))
        if r.staleness_s is not None:
            metrics.SOURCE_STALENESS.labels(r.exchange, r.symbol).set(r.staleness_s)
        if r.ingest_latency_ms is not None:
            metrics.SOURCE_LATENCY.labels(r.exchange, r.symbol).set(r.ingest_latency_ms / 1000)


class QualityPublisher:
    """Publishes a tracker's snapshot every ``quality_publish_interval_s`` to Redis and the gauges; Redis
    being down is logged and retried next time, never fatal."""

    def __init__(self, settings: Settings, tracker: QualityTracker) -> None:
        self.tracker = tracker
        self._settings = settings
        self.published = 0

    async def publish_once(self, redis: Redis) -> list[SourceQuality]:
        """One snapshot to the gauges and Redis; returns it."""
        records = self.tracker.snapshot()
        export_metrics(records)
        if records:
            async with redis.pipeline(transaction=False) as pipe:
                for r in records:
                    pipe.set(
                        source_quality_key(r.exchange, r.symbol), r.to_wire(), ex=self._settings.quality_ttl_s
                    )
                await pipe.execute()
            self.published += len(records)
        return records

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set, then once more."""
        redis = Redis.from_url(
            self._settings.redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._settings.quality_publish_interval_s)
                try:
                    await self.publish_once(redis)
                except Exception as exc:  # Redis down: the figures stay in the gauges, retried next time
                    log.warning("source quality not published", error=f"{type(exc).__name__}: {exc}")
                if stop.is_set():
                    break
        finally:
            await redis.aclose()
