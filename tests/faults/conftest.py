"""Fixtures of the fault-injection tests: one cluster-profile stack (three Kafka brokers, a Spark standalone
master and two workers, PostgreSQL, Redis, VictoriaMetrics) for the package, on free loopback ports; each
test gets a database, topics and checkpoints of its own, and a cluster whose every process runs."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest

from infra.local import stack as local_stack
from infra.local.cluster import cluster_defaults, cluster_services
from infra.local.process import pid_alive, read_pid
from infra.local.sandbox import app_ports, free_port, make_state_dir, stack_settings, with_topic_prefix
from infra.topics import create_topics
from tests.conftest import TEST_JVM_OPTIONS, database
from tests.faults.support import Cluster, wait_until
from tickflow.settings import Settings


def cluster_settings() -> Settings:
    """Settings of a cluster-profile stack under a new state dir, every port free (env and .env ignored)."""
    state_dir = make_state_dir()
    settings = stack_settings(
        state_dir,
        cluster_kafka_ports=[free_port() for _ in range(3)],
        cluster_controller_ports=[free_port() for _ in range(3)],
        spark_master_port=free_port(),
        spark_master_ui_port=free_port(),
        spark_worker_ui_ports=[free_port(), free_port()],
        spark_java_options=TEST_JVM_OPTIONS,
    )
    return settings.model_copy(update=cluster_defaults(settings))


@pytest.fixture(scope="package")
def cluster_stack() -> Iterator[Settings]:
    """The running cluster-profile stack of the package; every process stopped, the state dir removed."""
    for name in list(os.environ):
        if name.startswith("TICKFLOW_"):
            os.environ.pop(name)
    settings = cluster_settings()
    try:
        local_stack.up(settings, cluster=True)
        yield settings
    finally:
        local_stack.down(settings)
        shutil.rmtree(settings.state_dir, ignore_errors=True)


@pytest.fixture
def cluster(cluster_stack: Settings) -> Iterator[Cluster]:
    """The cluster with every process running (one a previous test killed is started again), a migrated
    database, topics (RF 3, min ISR 2), a checkpoint dir and the ports of Tickflow's processes (API,
    metrics) of this test's own: a process an earlier failed test left running cannot fail this one."""
    token = uuid.uuid4().hex[:10]
    ready = Cluster(cluster_stack)
    for service in cluster_services(cluster_stack):
        pid = read_pid(ready.paths.pid(service.name))
        if pid is None or not pid_alive(pid):
            ready.restart(service)
        else:
            wait_until(lambda s=service: s.check(cluster_stack) is None, 60, f"{service.name} healthy")
    with database(cluster_stack, f"t_faults_{token}") as db:
        settings = with_topic_prefix(db, f"f{token[:6]}_").model_copy(
            update={"checkpoint_dir": cluster_stack.state_dir / "checkpoints" / token, **app_ports()}
        )
        create_topics(settings)
        yield Cluster(settings)
