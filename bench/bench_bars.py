"""Benchmark of the bar job (``streaming_jobs.bars``) on this machine; prints the numbers and ratios.

    .venv/bin/python bench/bench_bars.py [--ticks 1000000] [--symbols 50] [--rate 10000] [--duration 150]

It starts a throw-away local stack (broker, PostgreSQL, Redis, VictoriaMetrics) on free ports, then:

1. Throughput: ``--ticks`` seeded synthetic ticks (``producers.synthetic``) are put on the tick topic; the
   job (warm JVM, ``spark_master`` from the settings, default ``local[2]``) processes them with
   ``availableNow`` twice: the whole application (bars + raw ticks into ``tick_data``) and bars only
   (``stream_store_ticks`` off). ticks/s = ticks / wall time of the run. Profile steps take the plan
   apart on the same ticks, one query alone each: the Kafka read without a parse (the source's floor),
   JSON parse without checks (the floor of any plan that parses JSON), parse + validity, the bars query
   with the previous plan's open/close order (a struct: every aggregation step sort-based) and with
   today's (one decimal: hash aggregation), the bars query without the ticks query beside it (the cost of
   the second read of the topic).
2. Ceiling: the same ticks aggregated into the same 1/5/15-minute bars by pandas in this one process, from
   the in-memory columns and from the JSON wire records (parse included).
3. Freshness, twice (the whole application, then bars only): the job runs continuously
   (``trigger_interval``, default 1 s) while a producer in a process of its own produces ticks live at
   ``--rate`` ticks/s (event time = wall clock) for ``--duration`` s. Freshness of a bar = the time its
   complete revision (trade count = ticks produced into the window) was received on Redis pub/sub minus
   its window end; also the latency of every published revision from its latest tick's event time.

Targets (issue 13): >= 100,000 ticks/s bars only and >= 50,000 ticks/s with tick_data; freshness p99
<= 1.5 s at 10k ticks/s with a 1 s trigger. The source is Spark's Kafka connector on Apache Kafka.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import threading
import time
import uuid
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import Queue
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: stages, infra.local

import numpy as np
import orjson
import pandas as pd
import redis
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from infra.db.migrate import migrate
from infra.local import stack as local_stack
from infra.local.sandbox import make_state_dir, stack_settings
from infra.topics import create_topics
from producers.kafka_producer import TickProducer
from producers.synthetic import SyntheticConfig, SyntheticSource
from streaming_jobs.bars import aggregate
from streaming_jobs.bars.finality import delay_ms
from streaming_jobs.bars.job import BARS_QUERY, start_bar_job
from streaming_jobs.bars.parse import TICK_SCHEMA, parse_ticks, valid_ticks
from streaming_jobs.bars.writer import BarBatchWriter
from streaming_jobs.source import read_topic
from streaming_jobs.spark_session import build_spark
from tickflow.intervals import Interval
from tickflow.keys import bars_channel
from tickflow.schemas import TICK_SCHEMA_VERSION
from tickflow.settings import Settings

START_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z, event time of the first synthetic tick


@dataclass(frozen=True)
class RunResult:
    ticks: int
    wall_s: float
    batches: int

    @property
    def rate(self) -> float:
        return self.ticks / self.wall_s


def wire(trade: dict, receipt_us: int) -> bytes:
    return orjson.dumps(
        {"v": TICK_SCHEMA_VERSION, **trade, "receipt_time": receipt_us, "source": "synthetic"}
    )


def with_topics(settings: Settings, checkpoint: str, **overrides: object) -> Settings:
    prefix = f"b{uuid.uuid4().hex[:6]}_"
    fresh = settings.model_copy(
        update={
            "topic_ticks": prefix + settings.topic_ticks,
            "topic_dlq": prefix + settings.topic_dlq,
            "topic_bars_prefix": prefix + settings.topic_bars_prefix,
            "topic_anomalies": prefix + settings.topic_anomalies,
            "checkpoint_dir": settings.state_dir / "checkpoints" / f"{checkpoint}-{prefix}",
            **overrides,
        }
    )
    create_topics(fresh)
    return fresh


def synthetic_trades(count: int, symbols: int, seed: int) -> list[dict]:
    names = tuple(f"SYN{i:03d}-USD" for i in range(symbols))
    source = SyntheticSource(SyntheticConfig(symbols=names, seed=seed, rate=10_000.0), start_us=START_US)
    trades: list[dict] = []
    while len(trades) < count:
        trades.extend(source.batch(min(8192, count - len(trades))))
    return trades


def produce(settings: Settings, trades: list[dict]) -> None:
    producer = TickProducer(settings)
    producer.send_many(
        settings.topic_ticks,
        (wire(t, t["event_time"] + 5000) for t in trades),
        (t["symbol"].encode() for t in trades),
    )
    producer.flush()


def run_available_now(spark: SparkSession, settings: Settings) -> RunResult:
    started = time.perf_counter()
    job = start_bar_job(spark, settings, available_now=True)
    bars_query = next(q for q in job.queries if q.name == BARS_QUERY)
    job.wait()
    wall = time.perf_counter() - started
    progress = [p for p in bars_query.recentProgress if p["numInputRows"] > 0]
    return RunResult(sum(p["numInputRows"] for p in progress), wall, len(progress))


def run_one_query(spark: SparkSession, settings: Settings, step: str) -> RunResult:
    """Profile step: one query alone over the tick topic (availableNow) into a counting sink: ``raw`` (the
    Kafka records, no parse: the source's floor), ``json`` (``from_json`` of every record, no checks: the
    parse floor), ``parse`` (``parse_ticks``, valid ticks only), ``bars`` (the bars query with its sinks,
    no ticks query beside it) or ``bars-struct`` (the same with the previous plan's open/close order, a
    struct, which made every aggregation step a ``SortAggregate``)."""
    raw = read_topic(spark, settings, settings.topic_ticks)
    counted = {  # the steps whose frame goes into a counting sink
        "raw": lambda: raw.select("value", "timestamp"),
        "json": lambda: raw.select(F.from_json(F.col("value").cast("string"), TICK_SCHEMA).alias("t")).select(
            "t.*"
        ),
        "parse": lambda: valid_ticks(parse_ticks(raw, settings.max_clock_skew_s)),
    }
    writer = None
    if step in counted:
        stream = counted[step]().writeStream.foreachBatch(lambda batch, _: batch.count())
    else:
        struct_order = F.struct("event_time", "partition", "offset")
        previous = mock.patch.object(aggregate, "ordering_key", lambda: struct_order)
        with previous if step == "bars-struct" else nullcontext():
            frame = aggregate.compute_bars(
                valid_ticks(parse_ticks(raw, settings.max_clock_skew_s)),
                settings.interval_list,
                settings.watermark,
                delay_ms(settings.watermark),
            )
        writer = BarBatchWriter(settings)
        stream = frame.writeStream.outputMode("update").foreachBatch(writer)
    started = time.perf_counter()
    query = (
        stream.option("checkpointLocation", str(settings.checkpoint_dir / step))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    wall = time.perf_counter() - started
    if writer is not None:
        writer.close()
    progress = [p for p in query.recentProgress if p["numInputRows"] > 0]
    return RunResult(sum(p["numInputRows"] for p in progress), wall, len(progress))


def pandas_bars(frame: pd.DataFrame, intervals: list[Interval]) -> int:
    """The job's bars with pandas: per symbol and window open/high/low/close (by event time), volume,
    quote volume, VWAP, count, first/last trade time. Returns the number of bars."""
    frame = frame.sort_values("event_time", kind="stable")
    frame["quote"] = frame["price"] * frame["size"]
    total = 0
    for interval in intervals:
        start = frame["event_time"] - frame["event_time"] % interval.micros
        bars = frame.assign(window_start=start).groupby(["symbol", "window_start"], sort=False).agg(
            open=("price", "first"), high=("price", "max"), low=("price", "min"), close=("price", "last"),
            volume=("size", "sum"), quote_volume=("quote", "sum"), trade_count=("price", "size"),
            first_trade_time=("event_time", "min"), last_trade_time=("event_time", "max"),
        )  # fmt: skip
        bars["vwap"] = bars["quote_volume"] / bars["volume"]
        total += len(bars)
    return total


def ceiling(trades: list[dict], intervals: list[Interval]) -> tuple[float, float]:
    """(ticks/s of the pandas aggregation alone, ticks/s of JSON parsing + aggregation)."""
    columns = ["symbol", "price", "size", "event_time"]
    frame = pd.DataFrame({c: [t[c] for t in trades] for c in columns})
    started = time.perf_counter()
    pandas_bars(frame, intervals)
    aggregate_rate = len(trades) / (time.perf_counter() - started)
    records = [wire(t, t["event_time"]) for t in trades]
    started = time.perf_counter()
    parsed = [orjson.loads(r) for r in records]
    pandas_bars(pd.DataFrame({c: [p[c] for p in parsed] for c in columns}), intervals)
    parse_rate = len(trades) / (time.perf_counter() - started)
    return aggregate_rate, parse_rate


@dataclass
class LiveRun:
    """What a live producer sent: ticks per (symbol, interval name, window start µs), and when (µs)."""

    counts: Counter[tuple[str, str, int]]
    started_us: int
    ended_us: int
    sent: int


def live_produce(settings: Settings, symbols: list[str], rate: float, duration_s: float, out: Queue) -> None:
    """Produce ``rate`` ticks/s with event time = now for ``duration_s``, then put the ``LiveRun`` on ``out``.

    Runs in a process of its own, as a producer does in a deployment: in the driver's process it would
    compete with the job's Python threads for the interpreter lock."""
    producer = TickProducer(settings)  # linger.ms from the settings, like the real producers
    intervals = settings.interval_list
    rng = np.random.default_rng(7)
    counts: Counter[tuple[str, str, int]] = Counter()
    sent = 0
    begin = time.time()
    while (now := time.time()) - begin < duration_s:
        due = int((now - begin) * rate) - sent
        if due <= 0:
            time.sleep(0.002)
            continue
        t_us = int(now * 1e6)
        values, keys = [], []
        for k in rng.integers(0, len(symbols), due):
            symbol = symbols[k]
            sent += 1
            trade = {
                "exchange": "synthetic", "symbol": symbol, "raw_symbol": symbol,
                "price": float(100 + rng.random()), "size": 1.0, "side": "buy",
                "trade_id": str(sent), "event_time": t_us,
            }  # fmt: skip
            values.append(wire(trade, t_us))
            keys.append(symbol.encode())
            for interval in intervals:
                counts[(symbol, interval.name, t_us - t_us % interval.micros)] += 1
        producer.send_many(settings.topic_ticks, values, keys)
        producer.poll(0)
    ended_us = int(time.time() * 1e6)
    producer.flush()
    out.put(LiveRun(counts, int(begin * 1e6), ended_us, sent))


class BarListener(threading.Thread):
    """Records every bar revision published on Redis with its receive time."""

    def __init__(self, settings: Settings, symbols: list[str]) -> None:
        super().__init__(daemon=True)
        self.pubsub = redis.Redis.from_url(settings.redis_url).pubsub()
        self.pubsub.subscribe(*[bars_channel(s) for s in symbols])
        self.received: list[tuple[float, dict]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is not None and message["type"] == "message":
                self.received.append((time.time(), orjson.loads(message["data"])))


def micros(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1_000_000)


def freshness(
    spark: SparkSession, settings: Settings, symbols: int, rate: float, duration_s: float, warmup_s: float
) -> dict:
    live = with_topics(settings, "live")
    names = [f"LIVE{i:03d}-USD" for i in range(symbols)]
    listener = BarListener(live, names)
    listener.start()
    job = start_bar_job(spark, live, available_now=False)
    time.sleep(5)  # first batches of the queries
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    producer = context.Process(target=live_produce, args=(live, names, rate, warmup_s + duration_s, out))
    producer.start()
    run: LiveRun = out.get(timeout=warmup_s + duration_s + 120)
    producer.join()
    time.sleep(8)  # let the job catch up with the last ticks
    job.stop()
    listener.stop.set()
    listener.join()

    measured_from = run.started_us + int(warmup_s * 1e6)
    complete_at: dict[tuple[str, str, int], float] = {}
    latencies = []
    for received, bar in listener.received:
        key = (bar["symbol"], bar["interval"], micros(bar["window_start"]))
        if micros(bar["last_trade_time"]) >= measured_from:
            latencies.append(received - micros(bar["last_trade_time"]) / 1e6)
        if key not in complete_at and bar["trade_count"] == run.counts.get(key):
            complete_at[key] = received
    fresh: dict[str, list[float]] = {}
    for (symbol, name, start), _count in run.counts.items():
        end = start + Interval.parse(name).micros
        if start < measured_from or end > run.ended_us:
            continue  # window not entirely inside the run
        received = complete_at.get((symbol, name, start))
        fresh.setdefault(name, []).append(received - end / 1e6 if received else float("inf"))
    return {
        "sent": run.sent,
        "duration_s": duration_s,
        "fresh": fresh,
        "latency": latencies,
        "revisions": len(listener.received),
    }


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def print_freshness(
    label: str, live: dict, args: argparse.Namespace, trigger: str, ticks_trigger: str
) -> None:
    print(
        f"\n== freshness, {label}: {live['sent']:,} ticks live at {args.rate:,.0f}/s, "
        f"measured {live['duration_s']:.0f} s after {args.warmup:.0f} s, "
        f"trigger {trigger} (ticks query {ticks_trigger}) =="
    )
    for name, values in sorted(live["fresh"].items(), key=lambda kv: Interval.parse(kv[0])):
        missing = sum(v == float("inf") for v in values)
        finite = [v for v in values if v != float("inf")]
        print(
            f"bar freshness {name:>3} (window end -> complete bar on Redis): n={len(values):4d} "
            f"p50={pct(finite, 50):.2f} s p99={pct(finite, 99):.2f} s "
            f"max={max(finite, default=float('nan')):.2f} s incomplete={missing}"
        )
    lat = live["latency"]
    print(
        f"revision latency (latest tick -> on Redis): n={len(lat)} p50={pct(lat, 50):.2f} s "
        f"p99={pct(lat, 99):.2f} s"
    )
    one_minute = [v for v in live["fresh"].get("1m", []) if v != float("inf")]
    verdict = "met" if pct(one_minute, 99) <= 1.5 else "NOT met"
    print(f"target p99 <= 1.5 s at 10k ticks/s (1m bars):   {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ticks", type=int, default=1_000_000, help="ticks of the throughput runs")
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10_000.0, help="ticks/s of the freshness run")
    parser.add_argument("--duration", type=float, default=150.0, help="measured seconds of the freshness run")
    parser.add_argument("--warmup", type=float, default=30.0, help="live seconds before measuring freshness")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--trigger", help="trigger_interval of the freshness run (default: the settings')")
    args = parser.parse_args()

    state_dir = make_state_dir()
    base = stack_settings(state_dir)
    try:
        local_stack.up(base)
        migrate(base.postgres_dsn)
        spark = build_spark(base, "tickflow-bench")
        intervals = base.interval_list
        print(
            f"spark {spark.version}, {base.spark_master}, shuffle partitions {base.spark_shuffle_partitions}"
        )

        warm = with_topics(base, "warm")
        produce(warm, synthetic_trades(20_000, args.symbols, args.seed + 1))
        run_available_now(spark, warm)

        trades = synthetic_trades(args.ticks, args.symbols, args.seed)
        full_env = with_topics(base, "full")
        started = time.perf_counter()
        produce(full_env, trades)
        produce_rate = len(trades) / (time.perf_counter() - started)
        bars_env = with_topics(base, "bars", stream_store_ticks=False)
        produce(bars_env, trades)
        full = run_available_now(spark, full_env)
        bars_only = run_available_now(spark, bars_env)
        raw_alone, json_alone, parse_alone, struct_alone, bars_alone = (
            run_one_query(spark, with_topics(base, f"{step}-alone", topic_ticks=bars_env.topic_ticks), step)
            for step in ("raw", "json", "parse", "bars-struct", "bars")
        )
        aggregate_rate, parse_rate = ceiling(trades, intervals)

        live_settings = base.model_copy(update={"trigger_interval": args.trigger or base.trigger_interval})
        lives = {
            label: freshness(
                spark, live_settings.model_copy(update={"stream_store_ticks": store}),
                args.symbols, args.rate, args.duration, args.warmup,
            )
            for label, store in (("bars + tick_data", True), ("bars only", False))
        }  # fmt: skip
    finally:
        local_stack.down(base)
        shutil.rmtree(state_dir, ignore_errors=True)

    print(f"\n== throughput: {args.ticks:,} synthetic ticks, {args.symbols} symbols, bars 1/5/15 min ==")
    print(f"produce to Kafka (one Python producer):         {produce_rate:>12,.0f} ticks/s")
    steps = (
        ("profile: Kafka read alone, no parse (count sink)", raw_alone),
        ("profile: JSON parse alone, no checks (count sink)", json_alone),
        ("profile: parse + validity alone (count sink)", parse_alone),
        ("profile: bars query alone, struct order (previous)", struct_alone),
        ("profile: bars query alone (no ticks query)", bars_alone),
        ("job, bars + tick_data", full),
        ("job, bars only (bars + dead-letter queries)", bars_only),
    )
    for label, run in steps:
        print(f"{label + ':':<52}{run.rate:>12,.0f} ticks/s  ({run.wall_s:.1f} s, {run.batches} batches)")
    print(
        f"ratio bars query decimal order / struct order:        {bars_alone.rate / struct_alone.rate:>6.3f}"
    )
    second_read = bars_only.rate / bars_alone.rate
    print(f"ratio job bars only / bars query alone (the second read): {second_read:>6.3f}")
    print(f"pandas ceiling, aggregation only:               {aggregate_rate:>12,.0f} ticks/s")
    print(f"pandas ceiling, JSON parse + aggregation:       {parse_rate:>12,.0f} ticks/s")
    print(f"ratio job (bars only) / pandas aggregation:     {bars_only.rate / aggregate_rate:>12.3f}")
    print(f"ratio job (bars only) / pandas parse + agg:     {bars_only.rate / parse_rate:>12.3f}")
    print(f"ratio job (bars + tick_data) / pandas parse+agg:{full.rate / parse_rate:>12.3f}")
    print(
        f"target >= 100,000 ticks/s bars only:            {'met' if bars_only.rate >= 100_000 else 'NOT met'}"
    )
    print(f"target >= 50,000 ticks/s with tick_data:        {'met' if full.rate >= 50_000 else 'NOT met'}")

    for label, live in lives.items():
        print_freshness(label, live, args, args.trigger or base.trigger_interval, base.ticks_trigger_interval)
    print(f"(measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
