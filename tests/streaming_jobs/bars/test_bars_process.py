"""`tickflow stream bars` as a process: SIGKILL it mid-run, restart it, the bars still equal the reference."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pandas as pd
import psycopg2
import pytest

from infra.local.sandbox import free_port
from producers.replay import replay_file
from tests.conftest import COINBASE_HOUR_CSV, REPO_ROOT
from tests.streaming_jobs.bars.support import assert_equal_to_reference, fetch_bars
from tickflow.settings import Settings

pytestmark = pytest.mark.spark

TRADES = 5882
COMMAND = [sys.executable, "-m", "tickflow", "stream", "bars"]


def scalar(settings: Settings, query: str) -> int:
    with psycopg2.connect(settings.postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute(query)
        value = cur.fetchone()[0]
    conn.close()
    return int(value)


def one_minute_trades(settings: Settings) -> int:
    return scalar(settings, "SELECT coalesce(sum(trade_count), 0) FROM ohlcv WHERE interval = '1m'")


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(
                f"bar job did not get there (exit {process.poll()}):\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.2)


def counter(metrics_text: str, sample: str) -> float:
    """Value of one sample line of a Prometheus text exposition (0 when absent)."""
    for line in metrics_text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def test_sigkill_mid_run_and_restart_give_the_reference_bars(
    fresh_env: Settings, shared_data: Path, coinbase_bars: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    port = free_port()
    settings = fresh_env.model_copy(
        update={"max_ticks_per_batch": 400, "trigger_interval": "200 milliseconds", "bars_metrics_port": port}
    )
    csv = shared_data / COINBASE_HOUR_CSV
    assert replay_file(settings, csv, "coinbase_csv").produced == TRADES
    env = {**os.environ, **settings.to_env()}
    log = tmp_path / "first-run.log"

    with log.open("wb") as out:
        first = subprocess.Popen(
            COMMAND, env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for(lambda: one_minute_trades(settings) > 0, first, log, timeout_s=240)
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        sample = 'tickflow_bars_input_rows_total{query="bars"}'
        wait_for(lambda: counter(httpx.get(metrics_url).text, sample) > 0, first, log, timeout_s=30)
        exposition = httpx.get(metrics_url).text
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the driver, its JVM and Python workers at once
        first.wait(30)
    at_kill = one_minute_trades(settings)
    assert 0 < at_kill < TRADES, f"not killed mid-run: {at_kill} of {TRADES} trades in 1m bars"
    assert counter(exposition, 'tickflow_bars_written_total{interval="1m"}') > 0
    assert "tickflow_bars_batch_duration_seconds_bucket" in exposition

    # the restart re-runs the interrupted batch with its recorded offsets, then reads the rest in big batches
    env["TICKFLOW_MAX_TICKS_PER_BATCH"] = str(TRADES)
    second = subprocess.run(
        [*COMMAND, "--available-now"], env=env, cwd=REPO_ROOT, capture_output=True, timeout=300, check=False
    )
    assert second.returncode == 0, second.stdout.decode()[-3000:] + second.stderr.decode()[-3000:]

    stored = fetch_bars(settings)
    for interval, reference in coinbase_bars.items():
        assert_equal_to_reference(stored[stored["interval"] == interval], reference)
    assert scalar(settings, "SELECT count(*) FROM tick_data") == TRADES
