"""`tickflow stack up|down|status` from nothing, with real clients checking every service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg2
import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from influxdb_client import InfluxDBClient, Point
from influxdb_client.client.write_api import SYNCHRONOUS

from infra.local import stack as local_stack
from infra.local.process import pid_alive
from infra.local.sandbox import make_state_dir, stack_settings
from infra.local.stack import State
from tickflow import jvm
from tickflow.settings import Settings

pytestmark = pytest.mark.services  # every test runs its own stack (or checks one)


@pytest.fixture(scope="module")
def own_stack() -> Iterator[Settings]:
    """A stack of this module's own, so up/down/kill do not disturb the session stack."""
    settings = stack_settings(make_state_dir())
    try:
        yield settings
    finally:
        local_stack.down(settings)


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKFLOW_")} | settings.to_env()
    return subprocess.run(
        [sys.executable, "-m", "tickflow", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_up_from_nothing_brings_every_service_up(own_stack: Settings) -> None:
    result = run_cli(own_stack, "stack", "up")
    assert result.returncode == 0, result.stderr
    statuses = {s.name: s for s in local_stack.status(own_stack)}
    assert {name: s.state for name, s in statuses.items()} == {
        "kafka": State.RUNNING,
        "postgres": State.RUNNING,
        "redis": State.RUNNING,
        "influx": State.RUNNING,
    }
    assert all(s.pid and pid_alive(s.pid) for s in statuses.values())


def test_broker_produces_and_consumes_with_a_consumer_group(own_stack: Settings) -> None:
    topic = f"smoke_{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": own_stack.kafka_bootstrap_servers})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(10)
    producer = Producer({"bootstrap.servers": own_stack.kafka_bootstrap_servers, "acks": "all"})
    sent = [f"m{i}".encode() for i in range(20)]
    for i, value in enumerate(sent):
        producer.produce(topic, key=f"k{i % 4}", value=value)
    assert producer.flush(10) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": own_stack.kafka_bootstrap_servers,
            "group.id": f"g_{topic}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
        }
    )
    consumer.subscribe([topic])
    received: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(received) < len(sent) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            received.append(msg.value())
    consumer.commit(asynchronous=False)
    consumer.close()
    assert sorted(received) == sorted(sent)


def test_postgres_runs_sql(own_stack: Settings) -> None:
    with psycopg2.connect(own_stack.postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_database(), split_part(current_setting('server_version'), '.', 1)")
        assert cur.fetchone() == ("tickflow", "15")


def test_redis_ping_and_pubsub(own_stack: Settings) -> None:
    client = redis.Redis.from_url(own_stack.redis_url)
    assert client.ping()
    pubsub = client.pubsub()
    pubsub.subscribe("smoke")
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    client.publish("smoke", b"hello")
    message = pubsub.get_message(timeout=2)
    assert message is not None and message["data"] == b"hello"


def test_influx_write_is_read_back_through_victoriametrics(own_stack: Settings) -> None:
    ts_ns = 1_693_929_600_000_000_000  # 2023-09-05: older than VictoriaMetrics' default 1-month retention
    with InfluxDBClient(url=own_stack.influx_url, token="x", org=own_stack.influx_org) as client:
        point = Point("smoke").tag("symbol", "BTC-USD").field("close", 25741.02).time(ts_ns)
        client.write_api(write_options=SYNCHRONOUS).write(bucket=own_stack.influx_bucket, record=point)
    httpx.post(f"{own_stack.influx_url}/internal/force_flush", timeout=5)
    export = httpx.post(
        f"{own_stack.influx_url}/api/v1/export",
        data={"match[]": "smoke_close", "start": "2023-01-01T00:00:00Z"},
    )
    assert export.status_code == 200
    assert '"values":[25741.02]' in export.text
    assert f'"timestamps":[{ts_ns // 1_000_000}]' in export.text


def test_up_twice_is_harmless(own_stack: Settings) -> None:
    before = {s.name: s.pid for s in local_stack.status(own_stack)}
    result = run_cli(own_stack, "stack", "up")
    assert result.returncode == 0, result.stderr
    after = {s.name: s.pid for s in local_stack.status(own_stack)}
    assert after == before


def test_status_tells_the_truth_after_a_kill(own_stack: Settings) -> None:
    redis_pid = next(s.pid for s in local_stack.status(own_stack) if s.name == "redis")
    assert redis_pid is not None
    os.kill(redis_pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_alive(redis_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    result = run_cli(own_stack, "stack", "status")
    assert result.returncode == 1
    redis_line = next(line for line in result.stdout.splitlines() if line.startswith("redis"))
    assert " dead " in redis_line
    assert local_stack.up(own_stack)  # brings the killed service back
    assert {s.name: s.state for s in local_stack.status(own_stack)}["redis"] is State.RUNNING


def test_status_names_the_apache_kafka_version(own_stack: Settings) -> None:
    result = run_cli(own_stack, "stack", "status")
    kafka_line = next(line for line in result.stdout.splitlines() if line.startswith("kafka"))
    expected = jvm.pom_property("kafka-broker", "kafka.version")
    assert f"ok (Apache Kafka {expected})" in kafka_line


def test_down_and_up_keep_topics_records_and_committed_offsets(own_stack: Settings) -> None:
    topic, group = f"persist-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": own_stack.kafka_bootstrap_servers})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": own_stack.kafka_bootstrap_servers, "enable.idempotence": True})
    for i in range(30):
        producer.produce(topic, key=f"k{i % 3}", value=f"v{i}")
    assert producer.flush(30) == 0
    del producer, admin
    consumer = group_consumer(own_stack, group)
    consumer.subscribe([topic])
    first = consume(consumer, 30)
    consumer.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in consumer.committed(consumer.assignment(), timeout=10)}
    consumer.close()
    assert sorted(first) == sorted(f"v{i}" for i in range(30))

    assert "kafka" in local_stack.down(own_stack)
    local_stack.up(own_stack)

    admin = AdminClient({"bootstrap.servers": own_stack.kafka_bootstrap_servers})
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 3
    consumer = group_consumer(own_stack, group)
    partitions = [TopicPartition(topic, p) for p in range(3)]
    assert {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=10)} == committed
    watermarks = [consumer.get_watermark_offsets(tp, timeout=10) for tp in partitions]
    assert sum(high - low for low, high in watermarks) == 30  # every record is still there
    consumer.close()


def group_consumer(settings: Settings, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )


def consume(consumer: Consumer, count: int, timeout_s: float = 30.0) -> list[str]:
    values: list[str] = []
    deadline = time.monotonic() + timeout_s
    while len(values) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            values.append(message.value().decode())
    return values


def test_down_leaves_no_process_behind(own_stack: Settings) -> None:
    pids = [s.pid for s in local_stack.status(own_stack)]
    assert all(pids)
    result = run_cli(own_stack, "stack", "down")
    assert result.returncode == 0, result.stderr
    assert not [pid for pid in pids if pid and pid_alive(pid)]
    assert all(s.state is State.DOWN for s in local_stack.status(own_stack))


def test_unmanaged_service_is_checked_not_started() -> None:
    remote = stack_settings(make_state_dir(), redis_url="redis://cache.internal:6379/0")
    assert not remote.is_managed("redis")  # never started: not on loopback (no connection is made here)
    settings = stack_settings(make_state_dir(), managed_services=["redis"], service_start_timeout_s=2.0)
    settings = settings.model_copy(update={"managed_services": []})
    with pytest.raises(local_stack.ServiceError, match="not managed by the local stack and not reachable"):
        local_stack.up(settings)
    assert all(s.state is State.DOWN for s in local_stack.status(settings))
