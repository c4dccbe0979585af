"""SIGKILL of the Spark driver (the `tickflow stream bars` process with its JVM) on the standalone cluster,
then a restart: it resumes from its checkpoints and the bars equal the reference."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import COINBASE_HOUR_CSV
from tests.faults.support import (
    TICKFLOW,
    TRADES,
    Cluster,
    assert_reference_bars,
    one_minute_trades,
    replay_all,
    running,
    small_batches,
    start,
    stop,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.spark]


def test_sigkill_of_the_driver_and_a_restart(
    cluster: Cluster, shared_data: Path, coinbase_bars: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    settings = small_batches(cluster.settings)
    replay_all(settings, shared_data / COINBASE_HOUR_CSV, tmp_path / "replay.log")
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start([*TICKFLOW, "stream", "bars"], settings, first_log)
    try:
        wait_until(running(first, first_log)(lambda: one_minute_trades(settings) > 0), 300, "first bars")
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the driver, its JVM and Python workers at once
        first.wait(30)
    killed_at = time.monotonic()
    at_kill = one_minute_trades(settings)
    assert at_kill < TRADES, f"not killed mid-job: {at_kill} of {TRADES} trades in 1m bars"

    second = start([*TICKFLOW, "stream", "bars"], settings, second_log)
    try:
        wait_until(running(second, second_log)(lambda: one_minute_trades(settings) == TRADES), 300,
                   "bars current")  # fmt: skip
        recovery_s = time.monotonic() - killed_at
        print(f"\nSpark driver SIGKILLed at {at_kill} of {TRADES} trades and restarted: bars current again "
              f"{recovery_s:.1f} s after the fault")  # fmt: skip
    finally:
        code = stop(second)
    assert code == 0, second_log.read_text()[-3000:]
    assert_reference_bars(settings, coinbase_bars)
