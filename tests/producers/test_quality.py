"""Source quality: the rolling tracker (with a fake clock), the score, and a live stream publishing its
figures to the real Redis and the Prometheus gauges."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import redis
from prometheus_client import REGISTRY

from producers.live import LiveStreamer
from producers.quality import ANY_SYMBOL, QualityTracker
from tests.producers.captures import OKX, received_messages
from tests.producers.test_live import Script, _okx_trade, _serve_script
from tickflow.quality import SourceQuality, quality_score, source_quality_key
from tickflow.settings import Settings

SETTINGS = Settings(
    _env_file=None, quality_window_s=60.0, quality_stale_after_s=30.0, quality_latency_budget_ms=1000.0
)
EVENT = 1_700_000_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _trade(symbol: str = "BTC-USD", exchange: str = "kraken") -> dict:
    return {"exchange": exchange, "symbol": symbol, "event_time": EVENT}


def test_score_formula() -> None:
    rates = ("staleness_s", "gap_unfilled_rate", "dead_letter_rate", "ingest_latency_ms", "gap_filled_rate")
    perfect = {
        **dict.fromkeys(rates, 0.0),
        "duplicate_rate": 0.0,
        "stale_after_s": 30.0,
        "latency_budget_ms": 1e3,
    }
    assert quality_score(**perfect) == 1.0
    assert quality_score(**{**perfect, "staleness_s": 15.0}) == pytest.approx(1 - 0.30 * 0.5)
    assert quality_score(**{**perfect, "staleness_s": 1e9}) == pytest.approx(0.70)  # capped at its weight
    assert quality_score(**{**perfect, "dead_letter_rate": 0.025, "ingest_latency_ms": 1000.0}) == (
        pytest.approx(1 - 0.20 * 0.5 - 0.15)
    )
    worst = {k: (1e9 if k.endswith("_s") or k.endswith("_ms") else 1.0) for k in perfect}
    assert quality_score(**{**worst, "stale_after_s": 30.0, "latency_budget_ms": 1000.0}) == 0.0


def test_tracker_rates_window_and_staleness() -> None:
    clock = Clock()
    tracker = QualityTracker(SETTINGS, bucket_s=5.0, clock=clock)
    tracker.accepted([_trade()] * 8, EVENT + 200_000, live=True)  # 200 ms ingest latency each
    tracker.duplicate("kraken", "BTC-USD")
    tracker.dead_letter("kraken", "BTC-USD", normalised=True)
    tracker.gap("kraken", "BTC-USD", filled=3, unfilled=1)
    tracker.dead_letter("kraken", "XBT/USD")  # a parser's spelling never delivered: exchange-wide
    clock.now += 10.0

    q = tracker.quality("kraken", "BTC-USD")
    assert q is not None
    assert (q.trades, q.accepted, q.duplicates, q.dead_letters, q.gaps_filled, q.gaps_unfilled) == (
        10,
        8,
        1,
        1,
        3,
        1,
    )
    assert (q.duplicate_rate, q.dead_letter_rate) == (0.1, 0.1)
    assert (q.gap_filled_rate, q.gap_unfilled_rate) == (round(3 / 14, 6), round(1 / 14, 6))
    assert q.ingest_latency_ms == 200.0 and q.staleness_s == 10.0
    assert q.score == quality_score(
        staleness_s=10.0, gap_unfilled_rate=1 / 14, dead_letter_rate=0.1, ingest_latency_ms=200.0,
        gap_filled_rate=3 / 14, duplicate_rate=0.1, stale_after_s=30.0, latency_budget_ms=1000.0,
    )  # fmt: skip
    assert {(r.exchange, r.symbol) for r in tracker.snapshot()} == {
        ("kraken", "BTC-USD"),
        ("kraken", ANY_SYMBOL),
    }

    clock.now += 60.0  # the window slid past every count; the last trade is 70 s old
    q = tracker.quality("kraken", "BTC-USD")
    assert q is not None and (q.trades, q.gaps_filled, q.ingest_latency_ms) == (0, 0, None)
    assert q.staleness_s == 70.0 and q.score == pytest.approx(0.70)
    assert SourceQuality.from_wire(q.to_wire()) == q


def test_live_stream_publishes_quality(shared_data: Path, fresh_topics: Settings) -> None:
    """OKX live: the server skips a run of BTC-USDT trades (a gap, not backfilled: max_backfill_trades=0) and
    re-sends some (duplicates); the published record counts exactly that."""
    messages = received_messages(shared_data / OKX)
    trade_at = {i: t for i, raw in enumerate(messages) if (t := _okx_trade(raw)) is not None}
    btc = [i for i in sorted(trade_at) if trade_at[i][0] == "BTC-USDT"]
    a, b, c = btc[20], btc[25], btc[17]  # send up to trade 20, re-send 17..20, skip 21..24, resume at 25
    script = Script([([slice(0, a + 1), slice(c, a + 1), slice(b, None)], "silent")])
    settings = fresh_topics.model_copy(
        update={"max_clock_skew_s": 1e10, "max_backfill_trades": 0, "quality_publish_interval_s": 0.2}
    )
    key = source_quality_key("okx", "BTC-USDT")
    client = redis.Redis.from_url(settings.redis_url)
    client.delete(key)

    async def run() -> None:
        server, port = await _serve_script(messages, script)
        streamer = LiveStreamer(settings, "okx", ["BTC-USDT", "BTC-USD-220527", "UNI-USD-SWAP"],
                                ws_url=f"ws://127.0.0.1:{port}")  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(streamer.run(stop))
        await asyncio.wait_for(script.done.wait(), timeout=30)
        for _ in range(100):
            if client.exists(key) and json.loads(client.get(key))["accepted"] == len(btc) - 4:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        server.close()

    asyncio.run(run())
    record = SourceQuality.from_wire(client.get(key))
    assert (record.accepted, record.duplicates, record.gaps_unfilled, record.dead_letters) == (
        len(btc) - 4,
        4,
        4,
        0,
    )
    assert record.gap_unfilled_rate == round(4 / (len(btc) - 4 + 4 + 4), 6)
    assert 0 < record.score < 1 and record.ingest_latency_ms is not None  # 2022 trades: huge "latency"
    assert 0 < client.ttl(key) <= settings.quality_ttl_s
    gauge = REGISTRY.get_sample_value(
        "tickflow_source_quality_score", {"exchange": "okx", "symbol": "BTC-USDT"}
    )
    assert gauge == record.score
    client.close()
