"""SIGKILL of one Spark worker (and its executor) in the middle of the bar job on the standalone cluster:
the job goes on with the other worker, the bars equal the reference, and the REST API serves them."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import COINBASE_HOUR_CSV
from tests.faults.support import (
    TICKFLOW,
    TRADES,
    Cluster,
    assert_api_serves_reference,
    assert_reference_bars,
    one_minute_trades,
    replay_all,
    running,
    small_batches,
    start,
    stop,
    wait_until,
    worker,
)

pytestmark = [pytest.mark.faults, pytest.mark.spark]


def test_sigkill_of_a_spark_worker_mid_job(
    cluster: Cluster, shared_data: Path, coinbase_bars: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    settings = small_batches(cluster.settings)
    replay_all(settings, shared_data / COINBASE_HOUR_CSV, tmp_path / "replay.log")
    log = tmp_path / "bars.log"
    job = start([*TICKFLOW, "stream", "bars"], settings, log)
    alive = running(job, log)
    try:
        wait_until(alive(lambda: one_minute_trades(settings) > 0), 300, "first bars")
        cluster.kill(worker(1))
        killed_at = time.monotonic()
        at_kill = one_minute_trades(settings)
        assert at_kill < TRADES, f"not killed mid-job: {at_kill} of {TRADES} trades in 1m bars"
        wait_until(alive(lambda: one_minute_trades(settings) == TRADES), 300, "bars current")
        recovery_s = time.monotonic() - killed_at
        print(f"\nSpark worker 1 SIGKILLed at {at_kill} of {TRADES} trades: bars current again "
              f"{recovery_s:.1f} s after the fault")  # fmt: skip
    finally:
        code = stop(job)
        cluster.restart(worker(1))  # the next test's cluster is whole again
    assert code == 0, log.read_text()[-3000:]
    assert "Lost executor" in log.read_text(), "the driver never lost the killed worker's executor"
    assert_reference_bars(settings, coinbase_bars)
    assert_api_serves_reference(settings, coinbase_bars, tmp_path / "api.log")
