"""A stalled bar job, as a user would cause it: `tickflow stream bars` runs on live ticks, gets SIGSTOP, then
SIGCONT. The bar-freshness watchdog (here in the test process, as the indicator job runs it) raises a
``bar_freshness`` anomaly while the job is stopped and clears it once bars are fresh again; the JVM's first
batch (warm-up) raises nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from confluent_kafka import Producer

from infra.local.sandbox import free_port
from streaming_jobs.anomalies.watchdog import FreshnessWatchdog
from tests.conftest import REPO_ROOT, isolated_settings
from tests.streaming_jobs.test_restart import TICKFLOW, child_env
from tickflow.anomaly import Anomaly
from tickflow.schemas import Tick
from tickflow.settings import Settings

pytestmark = pytest.mark.spark

REDIS_DB = 12


def now_us() -> int:
    return time.time_ns() // 1000


def tick_stream(settings: Settings, stop: threading.Event) -> None:
    """Five ticks a second with the current time, until ``stop``."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    price = 100.0
    while not stop.is_set():
        at = now_us()
        tick = Tick(
            exchange="test",
            symbol="BTC-USD",
            raw_symbol="BTC-USD",
            price=price,
            size=0.1,
            side="buy",
            trade_id=uuid.uuid4().hex,
            event_time=at,
            receipt_time=at,
            source="synthetic",
        )
        producer.produce(settings.topic_ticks, key=b"BTC-USD", value=tick.to_wire())
        producer.poll(0)
        price += 0.01
        stop.wait(0.2)
    producer.flush(10)


@pytest.fixture
def settings(stack: Settings, tmp_path) -> Iterator[Settings]:
    with isolated_settings(stack, "stall", REDIS_DB) as settings:
        redis.Redis.from_url(settings.redis_url).flushdb()
        # a threshold of 21 s: a healthy job on a loaded shared machine stays below it; SIGSTOP passes it
        update = {"checkpoint_dir": tmp_path / "checkpoints", "bars_metrics_port": free_port()}
        yield settings.model_copy(update={**update, "anomaly_bar_freshness_margin_s": 20.0})


def check_until(watchdog: FreshnessWatchdog, timeout_s: float, done) -> list[Anomaly]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        anomalies = watchdog.check(wait_s=1.0)
        if done(anomalies):
            return anomalies
    raise AssertionError(f"not reached within {timeout_s} s; lag {watchdog.state.lag_ms} ms")


def test_sigstop_of_the_bar_job_raises_bar_freshness_and_sigcont_clears_it(
    settings: Settings, tmp_path
) -> None:
    stop = threading.Event()
    ticks = threading.Thread(target=tick_stream, args=(settings, stop), daemon=True)
    ticks.start()
    log = (tmp_path / "bars.log").open("wb")
    bars = subprocess.Popen(
        [*TICKFLOW, "stream", "bars"],
        env=child_env(settings),
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    watchdog = FreshnessWatchdog(settings)
    try:
        # warm-up: nothing raised until the JVM's first batches made a fresh bar visible
        warm_up = check_until(watchdog, 300, lambda anomalies: anomalies or watchdog.state.armed)
        assert warm_up == [] and watchdog.state.armed
        os.killpg(bars.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        raised = check_until(watchdog, 90, bool)
        raised_after = time.monotonic() - stopped_at
        assert [(a.anomaly_type.value, a.symbol, a.details["state"]) for a in raised] == [
            ("bar_freshness", "BTC-USD", "open")
        ]
        os.killpg(bars.pid, signal.SIGCONT)
        # an escalation to critical may come first: the resumed job's first batch takes its time
        cleared = check_until(
            watchdog, 120, lambda anomalies: any(a.details["state"] == "cleared" for a in anomalies)
        )
        assert [(a.symbol, a.severity.value, a.details["state"]) for a in cleared] == [
            ("BTC-USD", "info", "cleared")
        ]
        print(f"bar_freshness raised {raised_after:.1f} s after SIGSTOP (threshold {raised[0].threshold} ms)")
        assert raised_after < 60  # threshold + check interval, with a generous bound for a loaded machine
    finally:
        stop.set()
        os.killpg(bars.pid, signal.SIGCONT)
        os.killpg(bars.pid, signal.SIGINT)
        try:
            bars.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(bars.pid, signal.SIGKILL)
            bars.wait(10)
        watchdog.close()
        log.close()
        ticks.join(10)
