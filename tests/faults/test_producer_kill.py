"""SIGKILL of the producer (`tickflow produce replay` of the Coinbase hour) in the middle of the replay, then
the replay run again from the start while the bar job runs on the standalone cluster: the tick topic holds
the trades of the killed run twice, the bar job's trade-id de-duplication drops the copies, and the bars
equal the reference."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import orjson
import pandas as pd
import pytest

from tests.conftest import COINBASE_HOUR_CSV
from tests.faults.support import (
    TICKFLOW,
    TRADES,
    Cluster,
    assert_reference_bars,
    end_offsets,
    one_minute_trades,
    replay_all,
    running,
    start,
    stop,
    wait_until,
)
from tests.streaming_jobs.bars.support import topic_records

pytestmark = [pytest.mark.faults, pytest.mark.spark]


def test_sigkill_of_the_producer_mid_replay_and_a_rerun(
    cluster: Cluster, shared_data: Path, coinbase_bars: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    settings = cluster.settings
    topic = settings.topic_ticks
    csv = shared_data / COINBASE_HOUR_CSV
    job_log, replay_log = tmp_path / "bars.log", tmp_path / "replay.log"
    job = start([*TICKFLOW, "stream", "bars"], settings, job_log)
    alive = running(job, job_log)
    argv = [*TICKFLOW, "produce", "replay", str(csv), "--format", "coinbase_csv", "--speed", "30"]
    replay = start(argv, settings, replay_log)
    try:
        a_quarter_in = running(replay, replay_log)(lambda: sum(end_offsets(settings, topic).values()) >= 1500)
        wait_until(a_quarter_in, 120, "a quarter of the hour replayed")
        os.killpg(replay.pid, signal.SIGKILL)
        replay.wait(30)
        killed_at = time.monotonic()
        at_kill = sum(end_offsets(settings, topic).values())
        assert at_kill < TRADES, f"not killed mid-replay: {at_kill} of {TRADES} ticks in"
        # the job makes the bars of what the killed run sent, so that the re-sent ticks come in later batches
        wait_until(alive(lambda: one_minute_trades(settings) == at_kill), 600, "bars of the killed run")

        replay_all(settings, csv, tmp_path / "rerun.log")
        wait_until(alive(lambda: one_minute_trades(settings) == TRADES), 300, "bars current", poll_s=1)
        recovery_s = time.monotonic() - killed_at
        print(f"\nproducer SIGKILLed at tick {at_kill} of {TRADES}, the replay run again: bars current again "
              f"{recovery_s:.1f} s after the fault")  # fmt: skip
    finally:
        stop(replay)
        code = stop(job)
    assert code == 0, job_log.read_text()[-3000:]
    trade_ids = [orjson.loads(value)["trade_id"] for _, value in topic_records(settings, topic)]
    assert len(set(trade_ids)) == TRADES
    assert len(trade_ids) >= TRADES + at_kill, "the killed run's ticks are not in the topic twice"
    assert_reference_bars(settings, coinbase_bars)
