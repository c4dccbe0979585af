"""Helpers of the fault-injection tests: the cluster's processes by name, Kafka partition leaders and ISRs,
the bar job and the producer as subprocesses, the job's metrics, the bars against the reference, waiting
with a deadline."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import pandas as pd
import psycopg2
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from infra.local.cluster import ClusterBroker, SparkWorker
from infra.local.process import pid_alive, read_pid
from infra.local.servers import ApiServer
from infra.local.services import Service, StatePaths
from tests.conftest import REPO_ROOT
from tests.streaming_jobs.bars.support import assert_equal_to_reference, fetch_bars
from tickflow.schemas import BAR_FLOAT_FIELDS
from tickflow.settings import Settings

TRADES: Final = 5882
"""Trades of the Coinbase hour (``tests.conftest.COINBASE_HOUR_CSV``)."""
TICKFLOW: Final = [sys.executable, "-m", "tickflow"]


@dataclass
class Cluster:
    """A running cluster-profile stack and the settings of one test (its database and topics)."""

    settings: Settings

    @property
    def paths(self) -> StatePaths:
        return StatePaths(self.settings.state_dir)

    def pid(self, service: Service) -> int:
        pid = read_pid(self.paths.pid(service.name))
        assert pid is not None and pid_alive(pid), f"{service.name} is not running"
        return pid

    def kill(self, service: Service) -> None:
        """SIGKILL ``service``'s process group (a worker with its executors) and wait until it is gone."""
        pid = self.pid(service)
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while pid_alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        assert not pid_alive(pid), f"{service.name} survived SIGKILL"

    def stop(self, service: Service, timeout_s: float = 60.0) -> None:
        """Stop ``service`` the way `stack down` does (PostgreSQL with ``pg_ctl stop -m fast``, the others
        with SIGTERM) and wait until its health check fails."""
        assert service.stop(self.settings, self.paths), f"{service.name} was not running"
        wait_until(lambda: service.check(self.settings) is not None, timeout_s, f"{service.name} stopped")

    def restart(self, service: Service, timeout_s: float = 60.0) -> None:
        """Start ``service`` again and wait until its health check passes."""
        service.start(self.settings, self.paths)
        wait_until(lambda: service.check(self.settings) is None, timeout_s, f"{service.name} restarted")

    def partitions(self, topic: str) -> dict[int, tuple[int, list[int]]]:
        """``{partition: (leader node, in-sync replica nodes)}`` of ``topic``."""
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap_servers})
        metadata = admin.list_topics(topic, timeout=10).topics[topic]
        return {p.id: (p.leader, sorted(p.isrs)) for p in metadata.partitions.values()}


def broker(node: int) -> ClusterBroker:
    return ClusterBroker(node)


def worker(node: int) -> SparkWorker:
    return SparkWorker(node)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.2) -> float:
    """Poll ``condition`` until true; the seconds it took.

    Raises:
        AssertionError: not true within ``timeout_s``.
    """
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not reached in {timeout_s} s: {what}")
        time.sleep(poll_s)
    return time.monotonic() - started


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of a `tickflow` child process: these settings, no other TICKFLOW_* variable."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TICKFLOW_")}
    return base | settings.to_env()


def start(argv: list[str], settings: Settings, log: Path) -> subprocess.Popen:
    """Start ``argv`` in the repo with ``settings``, in a session of its own, output to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            argv,
            env=child_env(settings),
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen, timeout_s: float = 90.0) -> int:
    """SIGTERM ``process``'s group, SIGKILL it after ``timeout_s``; its exit code."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # the driver's JVM and Python workers, if any are left
    return process.returncode


def one_minute_trades(settings: Settings) -> int:
    """Trades counted in the stored 1-minute bars."""
    with psycopg2.connect(settings.postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT coalesce(sum(trade_count), 0) FROM ohlcv WHERE interval = '1m'")
        value = cur.fetchone()[0]
    conn.close()
    return int(value)


def running(process: subprocess.Popen, log: Path) -> Callable[[Callable[[], bool]], Callable[[], bool]]:
    """Wrap a condition so that it fails at once (with the log's tail) when ``process`` has exited."""

    def wrap(condition: Callable[[], bool]) -> Callable[[], bool]:
        def check() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            return condition()

        return check

    return wrap


def end_offsets(settings: Settings, topic: str, timeout_s: float = 30.0) -> dict[int, int]:
    """``{partition: high watermark}`` of ``topic``, asked again while a partition's leadership moves
    (``NOT_LEADER_FOR_PARTITION``) or a broker is unreachable, for up to ``timeout_s``."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "fault-tests"})
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
                return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                        for p in partitions}  # fmt: skip
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        consumer.close()


COINBASE_CSV: Final = ("--format", "coinbase_csv")
"""`tickflow produce replay` options of a Coinbase trades CSV (trade id: the row number)."""


def replay_all(
    settings: Settings, csv: Path, log: Path, trades: int = TRADES, options: Sequence[str] = COINBASE_CSV
) -> None:
    """Replay ``csv`` (``trades`` rows; ``options`` say how to read it) into the tick topic with `tickflow
    produce replay`, all of it.

    Raises:
        AssertionError: the replay failed or did not deliver every trade.
    """
    argv = [*TICKFLOW, "produce", "replay", str(csv), *options]
    replay = start(argv, settings, log)
    assert replay.wait(120) == 0, log.read_text()[-3000:]
    assert f"delivered={trades} " in log.read_text(), log.read_text()[-3000:]


def small_batches(settings: Settings) -> Settings:
    """``settings`` with micro-batches of at most 1,500 ticks every 200 ms: the bar job takes the hour in
    four batches (about 3 s each on the cluster), so a fault after the first lands in the middle of its
    work."""
    return settings.model_copy(update={"max_ticks_per_batch": 1500, "trigger_interval": "200 milliseconds"})


def assert_reference_bars(settings: Settings, reference: dict[str, pd.DataFrame]) -> None:
    """The stored bars of every interval equal ``reference`` (``tests.conftest.coinbase_bars``).

    Raises:
        AssertionError: a bar is missing, extra or different.
    """
    stored = fetch_bars(settings)
    for interval, bars in reference.items():
        assert_equal_to_reference(stored[stored["interval"] == interval], bars)


def assert_api_serves_reference(settings: Settings, reference: dict[str, pd.DataFrame], log: Path) -> None:
    """A real API process on ``settings`` serves, at ``GET /api/v1/bars/BTC-USD``, bars of every interval
    equal to ``reference`` (all pages).

    Raises:
        AssertionError: a page failed, or a served bar is missing, extra or different.
    """
    server = ApiServer(settings, log).start(timeout_s=120)
    try:
        for interval, bars in reference.items():
            items: list[dict] = []
            cursor = None
            while True:
                params = {"interval": interval, "limit": 1000, **({"cursor": cursor} if cursor else {})}
                response = httpx.get(f"{server.url}/api/v1/bars/BTC-USD", params=params, timeout=30)
                assert response.status_code == 200, response.text
                page = response.json()
                items += page["items"]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            served = pd.DataFrame(items)
            for name in BAR_FLOAT_FIELDS:
                served[name] = served[name].astype(float)
            for name in ("window_start", "window_end", "first_trade_time", "last_trade_time"):
                served[name] = pd.to_datetime(served[name], utc=True).astype("datetime64[us, UTC]")
            assert_equal_to_reference(served, bars)
    finally:
        server.stop()


def bar_job_metric(settings: Settings, sample: str, **labels: str) -> float | None:
    """The value of ``sample`` with ``labels`` on the running bar job's metrics port, None when absent.

    Raises:
        httpx.HTTPError: the metrics port does not answer.
    """
    text = httpx.get(f"http://127.0.0.1:{settings.bars_metrics_port}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == sample and found.labels == labels:
                return found.value
    return None
