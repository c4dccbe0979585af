"""The synthetic source: deterministic GBM prices, realistic sizes, bursts; produced into the real broker."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from producers.synthetic import SECONDS_PER_YEAR, SyntheticConfig, SyntheticSource, run_synthetic
from tests.producers.kafka_util import consume_all
from tickflow.schemas import Tick
from tickflow.settings import Settings

SYMBOLS = ("BTC-USD", "ETH-USD", "DOGE-USD")
START = 1_693_929_600_000_000


def test_same_seed_same_ticks() -> None:
    config = SyntheticConfig(SYMBOLS, seed=42)
    first = SyntheticSource(config, START).batch(500)
    assert first == SyntheticSource(config, START).batch(500)
    assert first != SyntheticSource(SyntheticConfig(SYMBOLS, seed=43), START).batch(500)


def test_gbm_statistics_and_shapes() -> None:
    config = SyntheticConfig(("BTC-USD",), seed=1, rate=50.0, sigma=0.8, burst_probability=0.0)
    trades = [t for _ in range(10) for t in SyntheticSource(config, START).batch(8192)][:8192]
    times = np.array([t["event_time"] for t in trades], dtype=float)
    prices = np.array([t["price"] for t in trades])
    assert np.all(np.diff(times) >= 0) and times[0] >= START
    assert abs(np.mean(np.diff(times)) / 1e6 - 1 / 50.0) < 0.002  # Poisson arrivals at 50/s
    # log returns scaled by sqrt(dt in years) have the annualised volatility sigma (tick rounding aside)
    dt_years = np.diff(times) / 1e6 / SECONDS_PER_YEAR
    scaled = np.diff(np.log(prices))[dt_years > 0] / np.sqrt(dt_years[dt_years > 0])
    assert abs(np.std(scaled) - 0.8) < 0.1
    assert np.all(prices > 0) and all(round(p, 1) == p for p in prices)  # tick 0.1 for a 26,000 price
    sizes = np.array([t["size"] for t in trades])
    assert np.all(sizes >= 1e-8) and np.percentile(sizes, 99) > 10 * np.median(sizes)  # heavy right tail
    assert [t["trade_id"] for t in trades[:3]] == [str(START + i) for i in range(3)]  # ids from the start
    assert {t["side"] for t in trades} == {"buy", "sell"}


def test_bursts_raise_the_rate() -> None:
    calm = SyntheticSource(SyntheticConfig(SYMBOLS, seed=3, burst_probability=0.0), START).batch(4000)
    burst = SyntheticSource(SyntheticConfig(SYMBOLS, seed=3, burst_probability=1.0), START).batch(4000)
    span = lambda trades: trades[-1]["event_time"] - trades[0]["event_time"]  # noqa: E731
    assert 8 < span(calm) / span(burst) < 12  # burst_factor 10


def test_synthetic_ticks_in_kafka(fresh_topics: Settings) -> None:
    config = SyntheticConfig(SYMBOLS, seed=5, rate=100_000.0)
    stats = run_synthetic(fresh_topics, config, paced=False, max_ticks=3000)
    assert (stats.produced, stats.delivered, stats.dead_lettered) == (3000, 3000, 0)
    records = consume_all(fresh_topics, fresh_topics.topic_ticks, 3000)
    assert len(records) == 3000
    partitions, ids = defaultdict(set), defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        tick = Tick.from_wire(record.raw)
        assert tick.exchange == "synthetic" and tick.source.value == "synthetic" and record.key == tick.symbol
        partitions[tick.symbol].add(record.partition)
        ids[tick.symbol].append(int(tick.trade_id))
    assert set(partitions) == set(SYMBOLS) and all(len(p) == 1 for p in partitions.values())
    assert all(i == list(range(i[0], i[0] + len(i))) for i in ids.values())  # per symbol: complete, in order


def test_paced_run_follows_the_rate(fresh_topics: Settings) -> None:
    stats = run_synthetic(fresh_topics, SyntheticConfig(SYMBOLS, rate=2000.0), duration_s=1.0)
    assert 600 <= stats.produced <= 3200, stats  # about 2,000 in one second, loose for a busy machine
    assert stats.elapsed_s >= 1.0
