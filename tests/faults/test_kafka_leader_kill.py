"""SIGKILL of the leader of the tick partition in the middle of a replay on the three-broker cluster: the
producer (acks=all, idempotent) loses and duplicates nothing, the killed broker rejoins the ISR, and the bar
job running on the Spark standalone cluster produces the reference bars.

Meanwhile a process reads consumer-group lag (``tickflow.lag.GroupLag``, as ``/ready`` and the indicator job
do) of one group per ``__consumer_offsets`` partition, so some groups' coordinator is the killed broker and
moves: the reader must answer or fail with an error, never die (librdkafka's admin OffsetFetch crashes the
process with SIGSEGV when answered NOT_COORDINATOR, see ``tickflow/lag.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pandas as pd
import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from infra.local.services import OFFSETS_TOPIC_PARTITIONS
from tests.conftest import COINBASE_HOUR_CSV, REPO_ROOT
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
from tickflow.settings import Settings

pytestmark = [pytest.mark.faults, pytest.mark.spark]

LAG_READER = """
import json, pathlib, sys, time
from confluent_kafka import KafkaException
from tickflow.lag import GroupLag
bootstrap, topic, stop, *groups = sys.argv[1:]
readers = [GroupLag({"bootstrap.servers": bootstrap}, group, [topic]) for group in groups]
reads = errors = 0
while not pathlib.Path(stop).exists():
    for reader in readers:
        try:
            reader.read(2.0)
            reads += 1
        except KafkaException:
            errors += 1
    time.sleep(0.2)
def settled(reader):
    deadline = time.monotonic() + 60
    while True:
        try:
            return reader.read(5.0)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
print(json.dumps({"reads": reads, "errors": errors, "lags": {r.group: settled(r) for r in readers}}))
"""
"""Reads the lag of ``groups`` until the file ``stop`` exists, then prints the counts and a last reading
(asked again for up to 60 s while the cluster settles)."""


def coordinated_groups(prefix: str) -> list[str]:
    """One group name per ``__consumer_offsets`` partition: Kafka's coordinator of a group is the leader of
    partition ``abs(Java hashCode of the name) % partitions``."""
    found: dict[int, str] = {}
    for n in range(1000):
        name = f"{prefix}{n}"
        code = 0
        for char in name:
            code = (31 * code + ord(char)) & 0xFFFFFFFF
        code = code - (1 << 32) if code >= 1 << 31 else code
        found.setdefault(abs(code) % OFFSETS_TOPIC_PARTITIONS, name)
        if len(found) == OFFSETS_TOPIC_PARTITIONS:
            return sorted(found.values())
    raise AssertionError("no group name for every __consumer_offsets partition")


def commit_at_zero(settings: Settings, topic: str, groups: list[str]) -> None:
    """Commit offset 0 on every partition of ``topic`` for each of ``groups`` (their lag is then every
    record of the topic), asked again while the coordinators are still loading (NOT_COORDINATOR)."""
    for group in groups:
        consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group})
        offsets = [TopicPartition(topic, p, 0) for p in range(settings.kafka_partitions)]

        def committed(c: Consumer = consumer, o: list[TopicPartition] = offsets) -> bool:
            try:
                c.commit(offsets=o, asynchronous=False)
            except KafkaException:
                return False
            return True

        try:
            wait_until(committed, 60, f"offsets of {group} committed", poll_s=0.5)
        finally:
            consumer.close()


def test_sigkill_of_the_tick_partition_leader_mid_replay(
    cluster: Cluster, shared_data: Path, coinbase_bars: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    settings = cluster.settings
    topic = settings.topic_ticks
    csv = shared_data / COINBASE_HOUR_CSV
    job_log, replay_log = tmp_path / "bars.log", tmp_path / "replay.log"
    groups = coordinated_groups(f"{topic}-lag-")
    commit_at_zero(settings, topic, groups)
    stop_reading = tmp_path / "stop-reading"
    bootstrap = settings.kafka_bootstrap_servers
    reader_argv = [sys.executable, "-c", LAG_READER, bootstrap, topic, str(stop_reading)]
    lag_reader = subprocess.Popen(
        [*reader_argv, *groups], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
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

        stop_reading.touch()
        out, err = lag_reader.communicate(timeout=120)
        assert lag_reader.returncode == 0, f"the lag reader died ({lag_reader.returncode}):\n{err[-3000:]}"
        read = json.loads(out)
        assert read["reads"] > 0 and read["lags"] == {group: {topic: TRADES} for group in groups}, read
        print(f"\nconsumer lag read {read['reads']} times ({read['errors']} errors) across the fault")

        records = topic_records(settings, topic)
        trade_ids = [orjson.loads(value)["trade_id"] for _, value in records]
        assert len(trade_ids) == TRADES, f"{len(trade_ids)} ticks in {topic}, expected {TRADES}"
        assert len(set(trade_ids)) == TRADES, "duplicated ticks in the topic"

        wait_until(running(job, job_log)(lambda: one_minute_trades(settings) == TRADES), 300, "bars current")
        recovery_s = time.monotonic() - killed_at
        print(f"\nbroker {leader} (leader of {topic}[{partition}]) SIGKILLed at tick {at_kill}: bars current "
              f"again {recovery_s:.1f} s after the fault")  # fmt: skip
    finally:
        stop_reading.touch()
        if lag_reader.poll() is None:
            lag_reader.kill()
        stop(replay)
        code = stop(job)
    assert code == 0, job_log.read_text()[-3000:]
    assert_reference_bars(settings, coinbase_bars)
