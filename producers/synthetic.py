"""A synthetic multi-symbol trade source for demos and load tests (exchange ``synthetic``).

Model, per symbol: prices follow geometric Brownian motion in event time,
``S(t+dt) = S(t) * exp((mu - sigma^2/2) dt + sigma sqrt(dt) Z)`` with ``Z ~ N(0, 1)`` (Black–Scholes
dynamics; ``sigma`` annualised), rounded to a tick of about 1e-5 of the start price. Trades arrive as a
Poisson process of ``rate`` trades/s spread over the symbols, with bursts: each batch is a burst with
probability ``burst_probability``, when the rate is ``burst_factor`` times higher. Sizes are log-normal
(heavy right tail, like real trade sizes), rounded to 1e-8 and at least 1e-8. The taker side leans with
the price move (``buy`` with probability 0.6 on an up-move). Deterministic for a given ``seed`` and start
time. Trade ids count up per symbol from the start time in µs, so a restarted source never reuses an id
(the bar job de-duplicates on (exchange, symbol, trade_id)).
Numpy generates whole batches, so one core makes several hundred thousand trades per second.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Final

import numpy as np
from tqdm import tqdm

from producers.kafka_producer import TickProducer
from producers.pacing import Pacer
from producers.pipeline import IngestStats, TickPipeline, now_us
from producers.trades import TradeFields
from tickflow.schemas import TickSource
from tickflow.settings import Settings

EXCHANGE: Final = "synthetic"
SECONDS_PER_YEAR: Final = 365.25 * 86_400
START_PRICES: Final[dict[str, float]] = {
    "BTC-USD": 26_000.0, "ETH-USD": 1_650.0, "SOL-USD": 20.0, "XRP-USD": 0.5, "ADA-USD": 0.25,
    "DOGE-USD": 0.065, "AAPL": 180.0, "MSFT": 330.0,
}  # fmt: skip
DEFAULT_START_PRICE: Final = 100.0
BATCH: Final = 8192
_SIDES: Final = np.array(["sell", "buy"], dtype=object)


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the simulator (see module docstring); ``rate`` is the mean trades/s of all symbols."""

    symbols: tuple[str, ...]
    seed: int = 0
    rate: float = 1_000.0
    sigma: float = 0.8
    mu: float = 0.0
    mean_size_quote: float = 2_000.0
    size_log_sigma: float = 1.5
    burst_probability: float = 0.05
    burst_factor: float = 10.0


class SyntheticSource:
    """Generates batches of ``TradeFields``; event times start at ``start_us`` (µs, default now)."""

    def __init__(self, config: SyntheticConfig, start_us: int | None = None) -> None:
        if not config.symbols:
            raise ValueError("the synthetic source needs at least one symbol")
        if not config.rate > 0:
            raise ValueError(f"rate must be > 0, got {config.rate}")
        self.config = config
        self._rng = np.random.default_rng(config.seed)
        self._symbols = list(config.symbols)
        self._symbol_objects = np.array(self._symbols, dtype=object)
        start = np.array([START_PRICES.get(s, DEFAULT_START_PRICE) for s in self._symbols])
        self._log_price = np.log(start)
        self._tick = 10.0 ** (np.floor(np.log10(start)) - 5)
        self._decimals = [max(0, -int(math.log10(t))) for t in self._tick]
        self._mean_log_size = np.log(config.mean_size_quote / start) - config.size_log_sigma**2 / 2
        self._clock_us = float(start_us if start_us is not None else now_us())
        self._last_us = np.full(len(self._symbols), self._clock_us)
        self._next_id = np.full(len(self._symbols), int(self._clock_us), dtype=np.int64)

    def batch(self, n: int = BATCH) -> list[TradeFields]:
        """The next ``n`` trades in event-time order."""
        cfg, rng = self.config, self._rng
        rate = cfg.rate * (cfg.burst_factor if rng.random() < cfg.burst_probability else 1.0)
        times = self._clock_us + np.cumsum(rng.exponential(1e6 / rate, n))
        self._clock_us = float(times[-1])
        which = rng.integers(0, len(self._symbols), n)
        z = rng.standard_normal(n)
        prices = np.empty(n)
        sizes = np.empty(n)
        ids = np.empty(n, dtype=np.int64)
        for k in range(len(self._symbols)):
            mask = which == k
            count = int(mask.sum())
            if not count:
                continue
            t = times[mask]
            dt = np.diff(t, prepend=self._last_us[k]) / 1e6 / SECONDS_PER_YEAR
            steps = (cfg.mu - cfg.sigma**2 / 2) * dt + cfg.sigma * np.sqrt(dt) * z[mask]
            path = self._log_price[k] + np.cumsum(steps)
            self._log_price[k] = path[-1]
            self._last_us[k] = t[-1]
            prices[mask] = np.maximum(np.round(np.exp(path), self._decimals[k]), self._tick[k])
            sizes[mask] = rng.lognormal(self._mean_log_size[k], cfg.size_log_sigma, count)
            ids[mask] = self._next_id[k] + np.arange(count)
            self._next_id[k] += count
        sizes = np.maximum(np.round(sizes, 8), 1e-8)
        sides = _SIDES[(rng.random(n) < np.where(z > 0, 0.6, 0.4)).astype(np.int8)].tolist()
        symbols = self._symbol_objects[which].tolist()
        return [
            {
                "exchange": EXCHANGE,
                "symbol": symbol,
                "raw_symbol": symbol,
                "price": price,
                "size": size,
                "side": side,
                "trade_id": trade_id,
                "event_time": t_us,
            }
            for symbol, price, size, side, trade_id, t_us in zip(
                symbols,
                prices.tolist(),
                sizes.tolist(),
                sides,
                list(map(str, ids.tolist())),
                times.astype(np.int64).tolist(),
                strict=True,
            )
        ]


def run_synthetic(
    settings: Settings,
    config: SyntheticConfig,
    *,
    paced: bool = True,
    duration_s: float | None = None,
    max_ticks: int | None = None,
    producer: TickProducer | None = None,
    progress: bool = False,
    stop: threading.Event | None = None,
) -> IngestStats:
    """Produce synthetic ticks into ``settings.topic_ticks`` until ``duration_s``, ``max_ticks`` or
    ``stop``; then flush. ``paced``: at ``config.rate`` trades/s of wall time (event times track the wall
    clock); else as fast as possible. Returns the stats (source ``synthetic``)."""
    source = SyntheticSource(config)
    sink = producer or TickProducer(settings)
    pipeline = TickPipeline(settings, sink, TickSource.SYNTHETIC, EXCHANGE)
    pacer = Pacer(1.0, stop) if paced else None
    started = time.monotonic()
    batch_size = max(1, min(BATCH, int(config.rate / 20))) if paced else BATCH
    with tqdm(total=max_ticks, disable=not progress, unit=" ticks", unit_scale=True, desc="synthetic") as bar:
        while not (stop is not None and stop.is_set()):
            if duration_s is not None and time.monotonic() - started >= duration_s:
                break
            remaining = None if max_ticks is None else max_ticks - pipeline.stats.trades_in
            if remaining is not None and remaining <= 0:
                break
            trades = source.batch(batch_size if remaining is None else min(batch_size, remaining))
            if pacer is not None:
                pacer.wait(trades[-1]["event_time"])
            bar.update(pipeline.submit_trades(trades, now_us()))
    sink.flush()
    return pipeline.finish(started)
