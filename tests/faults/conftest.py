"""Fixtures of the fault-injection tests: a private cluster-profile stack (three Kafka brokers, a Spark
standalone master and two workers, PostgreSQL, Redis, VictoriaMetrics) per test, on free loopback ports."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest

from infra.local import stack as local_stack
from infra.local.cluster import cluster_defaults
from infra.topics import create_topics
from tests.conftest import database, free_port, make_state_dir, stack_settings, with_topic_prefix
from tests.faults.support import Cluster
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
        producer_metrics_port=free_port(),
        bars_metrics_port=free_port(),
    )
    return settings.model_copy(update=cluster_defaults(settings))


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A running cluster-profile stack with a migrated database and created topics (RF 3, min ISR 2) of its
    own; every process stopped and the state dir removed afterwards."""
    for name in list(os.environ):
        if name.startswith("TICKFLOW_"):
            os.environ.pop(name)
    settings = cluster_settings()
    try:
        local_stack.up(settings, cluster=True)
        with database(settings, f"t_faults_{uuid.uuid4().hex[:10]}") as db:
            ready = with_topic_prefix(db, f"f{uuid.uuid4().hex[:6]}_")
            create_topics(ready)
            yield Cluster(ready)
    finally:
        local_stack.down(settings)
        shutil.rmtree(settings.state_dir, ignore_errors=True)
