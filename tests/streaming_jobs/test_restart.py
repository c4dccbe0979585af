"""What a user does first: run the pipeline, Ctrl-C, run it again — and what happens when the topic and the
checkpoint no longer agree. Real Apache Kafka, Spark's Kafka connector, PostgreSQL; processes as `make run`
starts them (`tickflow run`'s supervisor over a Procfile)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pandas as pd
import psycopg2
import pytest
from confluent_kafka.admin import AdminClient
from pyspark.sql import SparkSession

from infra.local.sandbox import free_port
from infra.topics import create_topics
from producers.replay import replay_file
from streaming_jobs.bars.job import start_bar_job
from tests.conftest import COINBASE_HOUR_CSV, REPO_ROOT
from tests.reference_bars import reference_bars
from tests.streaming_jobs.bars.support import assert_equal_to_reference, fetch_bars, topic_records
from tickflow.settings import Settings

pytestmark = pytest.mark.spark

TICKFLOW = [sys.executable, "-m", "tickflow"]
SUPERVISOR = [
    sys.executable,
    "-c",
    "import sys; from pathlib import Path; from infra.local.run import run_processes; "
    "sys.exit(run_processes(Path(sys.argv[1]), Path(sys.argv[2]), 75.0))",
]


def child_env(settings: Settings) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TICKFLOW_")}
    return base | settings.to_env() | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def scalar(settings: Settings, query: str) -> object:
    with psycopg2.connect(settings.postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute(query)
        value = cur.fetchone()[0]
    conn.close()
    return value


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"not reached (exit {process.poll()}):\n{log.read_text()[-4000:]}")
        time.sleep(0.5)


def run_until(settings: Settings, procfile: Path, log: Path, condition: Callable[[], bool]) -> str:
    """Start the Procfile's processes under `tickflow run`'s supervisor, wait for ``condition``, Ctrl-C
    (SIGINT to the process group, as a terminal sends it); the supervisor's output."""
    with log.open("wb") as out:
        run = subprocess.Popen(
            [*SUPERVISOR, str(procfile), str(log.with_suffix(".run.log"))],
            env=child_env(settings),
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(condition, run, log, timeout_s=300)
    finally:
        os.killpg(run.pid, signal.SIGINT)
        assert run.wait(120) == 0, log.read_text()[-4000:]
    return log.read_text()


def stored_ticks_reference(settings: Settings) -> dict[str, pd.DataFrame]:
    """Reference bars computed with pandas from every tick record in the topic (partition, offset order)."""
    rows = [orjson.loads(value) for _, value in topic_records(settings, settings.topic_ticks)]
    trades = pd.DataFrame(
        {
            "symbol": [r["symbol"] for r in rows],
            "price": [r["price"] for r in rows],
            "amount": [r["size"] for r in rows],
            "timestamp": pd.to_datetime([r["event_time"] for r in rows], unit="us", utc=True),
        }
    )
    trades["timestamp"] = trades["timestamp"].astype("datetime64[us, UTC]")
    return {name: reference_bars(trades, minutes) for name, minutes in (("1m", 1), ("5m", 5), ("15m", 15))}


def test_run_ctrl_c_run_again_continues_without_counting_twice(
    spark: SparkSession, fresh_env: Settings, tmp_path: Path
) -> None:
    settings = fresh_env.model_copy(
        update={
            "symbols": ["BTC-USD", "ETH-USD"],
            "producer_metrics_port": free_port(),
            "bars_metrics_port": free_port(),
            "stream_store_ticks": False,
        }
    )
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        "producer: exec tickflow produce synthetic --rate 200\nbars: exec tickflow stream bars\n"
    )
    newest = "SELECT coalesce(max(last_trade_time), 'epoch') FROM ohlcv WHERE interval = '1m'"
    output = run_until(
        settings, procfile, tmp_path / "first.log", lambda: scalar(settings, newest).year > 1970
    )
    assert "stopped on its own" not in output
    after_first = scalar(settings, newest)
    output = run_until(
        settings, procfile, tmp_path / "second.log", lambda: scalar(settings, newest) > after_first
    )
    assert "stopped on its own" not in output

    # what the second run had not reached yet when it was stopped, from the same checkpoint (in-process)
    start_bar_job(spark, settings, available_now=True).wait()
    stored = fetch_bars(settings)
    for interval, reference in stored_ticks_reference(settings).items():
        assert len(reference) > 0
        assert_equal_to_reference(stored[stored["interval"] == interval], reference)


def test_a_recreated_topic_stops_the_job_with_the_fix_and_reset_recovers(
    spark: SparkSession, fresh_env: Settings, shared_data: Path, tmp_path: Path
) -> None:
    settings = fresh_env.model_copy(update={"bars_metrics_port": free_port()})
    csv = shared_data / COINBASE_HOUR_CSV
    head = tmp_path / "head.csv"
    head.write_text("".join(csv.read_text().splitlines(keepends=True)[:41]))  # header + 40 trades
    assert replay_file(settings, csv, "coinbase_csv").produced == 5882

    def bars_job() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*TICKFLOW, "stream", "bars", "--available-now"],
            env=child_env(settings),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    start_bar_job(spark, settings, available_now=True).wait()  # in-process: the checkpoint of the first run
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    admin.delete_topics([settings.topic_ticks])[settings.topic_ticks].result(30)
    deadline = time.monotonic() + 30
    while settings.topic_ticks in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.2)
    create_topics(settings)
    assert replay_file(settings, head, "coinbase_csv").produced == 40

    failed = bars_job()
    assert failed.returncode == 2, failed.stderr[-3000:]
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("tickflow stream bars: query ") and "holds Kafka offsets" in last, failed.stderr[
        -3000:
    ]
    assert last.endswith("tickflow stream reset bars")

    reset = subprocess.run(
        [*TICKFLOW, "stream", "reset", "bars", "--yes"],
        env=child_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert reset.returncode == 0 and "deleted:" in reset.stdout, reset.stderr
    assert bars_job().returncode == 0
    assert scalar(settings, "SELECT count(*) FROM tick_data") == 5882  # the 40 again: no duplicate row
