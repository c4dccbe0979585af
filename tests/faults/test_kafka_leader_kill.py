"""SIGKILL of the leader of the tick partition in the middle of a replay on the three-broker cluster: the
producer (acks=all, idempotent) loses and duplicates nothing, the killed broker rejoins the ISR, and the bar
job running on the Spark standalone cluster produces the reference bars."""

from __future__ import annotations

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
    broker,
    end_offsets,
    one_minute_trades,
    running,
    start,
    stop,
    wait_until,
)
from tests.streaming_jobs.bars.support import topic_records

pytestmark = [pytest.mark.faults, pytest.mark.spark]


def test_sigkill_of_the_tick_partition_leader_mid_replay(
    cluster: Cluster, shared_data: Path, coinbase_bars: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    settings = cluster.settings
    topic = settings.topic_ticks
    csv = shared_data / COINBASE_HOUR_CSV
    job_log, replay_log = tmp_path / "bars.log", tmp_path / "replay.log"
    job = start([*TICKFLOW, "stream", "bars"], settings, job_log)
    replay_argv = [*TICKFLOW, "produce", "replay", str(csv), "--format", "coinbase_csv", "--speed", "240"]
    replay = start(replay_argv, settings, replay_log)
    try:
        # the hour has one symbol, so one partition takes it: kill its leader once a sixth of it is in
        sixth_in = running(replay, replay_log)(lambda: max(end_offsets(settings, topic).values()) >= 1000)
        wait_until(sixth_in, 120, "a sixth of the hour replayed")
        offsets = end_offsets(settings, topic)
        partition = max(offsets, key=offsets.__getitem__)
        leader, isr = cluster.partitions(topic)[partition]
        assert isr == [1, 2, 3]
        at_kill = offsets[partition]
        cluster.kill(broker(leader))
        killed_at = time.monotonic()
        assert replay.poll() is None, "the replay ended before the fault"
        assert at_kill < TRADES, f"not killed mid-replay: {at_kill} of {TRADES} ticks in"

        assert replay.wait(180) == 0, replay_log.read_text()[-3000:]
        cluster.restart(broker(leader))
        wait_until(lambda: all(isr == [1, 2, 3] for _, isr in cluster.partitions(topic).values()), 120,
                   f"broker {leader} back in every ISR")  # fmt: skip

        records = topic_records(settings, topic)
        trade_ids = [orjson.loads(value)["trade_id"] for _, value in records]
        assert len(trade_ids) == TRADES, f"{len(trade_ids)} ticks in {topic}, expected {TRADES}"
        assert len(set(trade_ids)) == TRADES, "duplicated ticks in the topic"

        wait_until(running(job, job_log)(lambda: one_minute_trades(settings) == TRADES), 300, "bars current")
        recovery_s = time.monotonic() - killed_at
        print(f"\nbroker {leader} (leader of {topic}[{partition}]) SIGKILLed at tick {at_kill}: bars current "
              f"again {recovery_s:.1f} s after the fault")  # fmt: skip
    finally:
        stop(replay)
        code = stop(job)
    assert code == 0, job_log.read_text()[-3000:]
    assert_reference_bars(settings, coinbase_bars)
