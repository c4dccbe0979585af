"""Benchmark: validated ticks/s (synthetic source -> validation -> Kafka) vs raw confluent-kafka produce.

Run: ``.venv/bin/python bench/bench_producer.py [--ticks N] [--rounds R] [--existing]``

Without ``--existing`` it starts its own local stack on free ports (and stops it afterwards); with it, it
uses the stack the ``TICKFLOW_*`` settings point at. Each round measures, on fresh topics:

1. validated: ``run_synthetic`` unpaced — GBM generation, ``TickValidator``, serialisation and
   ``TickProducer`` (acks=all, idempotent, configured compression), until the broker acknowledged all;
2. raw: a plain confluent-kafka ``Producer`` with the same configuration producing the same
   pre-serialised values and keys (recorded from the same seed through the same pipeline) in a tight loop,
   until flushed.

Prints each round (wall rate; CPU µs per record of the process and of the Python main thread), the
medians, their ratio, and the load average (wall rates are only meaningful on an idle machine).
Targets: >= 200,000 validated ticks/s on one core, >= 50% of raw.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


from infra.local.sandbox import private_stack, with_topic_prefix  # noqa: E402
from infra.topics import create_topics  # noqa: E402
from producers.pipeline import TickPipeline, now_us  # noqa: E402
from producers.synthetic import BATCH, SyntheticConfig, SyntheticSource, run_synthetic  # noqa: E402
from tickflow.kafka import make_producer, produce_waiting  # noqa: E402
from tickflow.schemas import TickSource  # noqa: E402
from tickflow.settings import Settings  # noqa: E402

NOMINAL_RATE = 100_000.0  # the synthetic event clock's ticks/s; unpaced runs go as fast as they can


class _Recorder:
    """Stands in for ``TickProducer`` to capture the exact bytes the pipeline would send."""

    def __init__(self) -> None:
        self.values: list[bytes] = []
        self.keys: list[bytes] = []

    def send_many(self, topic: str, values: Iterable[bytes], keys: Iterable[bytes]) -> int:
        self.values.extend(values)
        self.keys.extend(keys)


def _config(settings: Settings, seed: int) -> SyntheticConfig:
    return SyntheticConfig(tuple(settings.symbols), seed=seed, rate=NOMINAL_RATE)


def _recorded(settings: Settings, seed: int, ticks: int) -> _Recorder:
    recorder = _Recorder()
    pipeline = TickPipeline(settings, recorder, TickSource.SYNTHETIC, "synthetic")  # type: ignore[arg-type]
    source = SyntheticSource(_config(settings, seed))
    while len(recorder.values) < ticks:
        pipeline.submit_trades(source.batch(min(BATCH, ticks - len(recorder.values))), now_us())
    return recorder


def _fresh(settings: Settings) -> Settings:
    fresh = with_topic_prefix(settings, f"bench{uuid.uuid4().hex[:6]}_")
    create_topics(fresh)
    return fresh


@dataclass(frozen=True)
class Measure:
    """Records per second of wall time, and CPU µs per record of the process and of the main thread
    (the Python thread; librdkafka's threads do compression and I/O besides)."""

    rate: float
    process_us: float
    thread_us: float


@contextmanager
def _measure(records: int, out: list[Measure]) -> Iterator[None]:
    wall, cpu, thread = time.perf_counter(), time.process_time(), time.thread_time()
    yield
    wall, cpu, thread = time.perf_counter() - wall, time.process_time() - cpu, time.thread_time() - thread
    out.append(Measure(records / wall, cpu / records * 1e6, thread / records * 1e6))


def _validated(settings: Settings, seed: int, ticks: int) -> Measure:
    out: list[Measure] = []
    with _measure(ticks, out):
        stats = run_synthetic(settings, _config(settings, seed), paced=False, max_ticks=ticks)
    if stats.delivered != ticks or stats.produced != ticks:
        raise SystemExit(f"validated run lost ticks: {stats.summary()}")
    return out[0]


def _raw(settings: Settings, recorded: _Recorder) -> Measure:
    producer = make_producer(settings, "bench-producer")
    produce, topic = producer.produce, settings.topic_ticks
    out: list[Measure] = []
    with _measure(len(recorded.values), out):
        for value, key in zip(recorded.values, recorded.keys, strict=True):
            try:
                produce(topic, value, key)
            except BufferError:
                produce_waiting(producer, topic, value, key)
        if producer.flush(60):
            raise SystemExit("raw run: records left unflushed")
    return out[0]


def run(settings: Settings, ticks: int, rounds: int, seed: int) -> None:
    recorded = _recorded(settings, seed, ticks)
    size = sum(map(len, recorded.values)) / len(recorded.values)
    print(f"{ticks:,} ticks per run, {size:.0f} B per value, compression {settings.kafka_compression}, "
          f"{rounds} rounds, broker {settings.kafka_bootstrap_servers}")  # fmt: skip
    validated: list[Measure] = []
    raw: list[Measure] = []
    for n in range(1, rounds + 1):
        validated.append(_validated(_fresh(settings), seed, ticks))
        raw.append(_raw(_fresh(settings), recorded))
        for name, m in (("validated", validated[-1]), ("raw", raw[-1])):
            print(f"round {n} {name:<9} {m.rate:>10,.0f} /s wall   CPU µs per record: process "
                  f"{m.process_us:.2f}, main thread {m.thread_us:.2f}")  # fmt: skip
    v_rate, r_rate = (statistics.median(m.rate for m in ms) for ms in (validated, raw))
    v_thread = statistics.median(m.thread_us for m in validated)
    print(f"median validated: {v_rate:,.0f} ticks/s wall; {1e6 / v_thread:,.0f} ticks per second of "
          "main-thread CPU (target: >= 200,000 on one core)")  # fmt: skip
    print(f"median raw:       {r_rate:,.0f} msgs/s wall")
    print(f"ratio:            {v_rate / r_rate:.0%} of raw (target >= 50%)")
    load = os.getloadavg()[0]
    print(f"load average:     {load:.1f} on {os.cpu_count()} cores (wall rates need an idle machine)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ticks", type=int, default=400_000, help="ticks per run (default 400,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of validated + raw (default 3)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--existing", action="store_true", help="use the stack of the TICKFLOW_* settings")
    args = parser.parse_args()
    if args.existing:
        run(Settings(), args.ticks, args.rounds, args.seed)
        return
    with private_stack() as settings:
        run(settings, args.ticks, args.rounds, args.seed)


if __name__ == "__main__":
    main()
