"""docker-compose.yml's Kafka brokers and the local cluster profile (`tickflow stack up --cluster`) run the
same Kafka version with the same broker and topic settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.local.cluster import BROKERS, cluster_defaults
from infra.local.services import kraft_properties
from tests.infra.deploy.compose import service_env, service_settings
from tickflow import jvm
from tickflow.settings import Settings

# Differ by nature between containers and loopback processes: identity, addresses and paths.
PER_NODE = {"node.id", "controller.quorum.voters", "listeners", "advertised.listeners", "log.dirs",
            "listener.security.protocol.map"}  # fmt: skip


def kafka_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services.items() if s.get("image", "").startswith("apache/kafka:")}


def test_compose_runs_the_kafka_version_of_the_cluster_profile(services: dict[str, dict[str, Any]]) -> None:
    found = kafka_services(services)
    assert len(found) == BROKERS
    tags = {s["image"].split(":", 1)[1] for s in found.values()}
    assert tags == {jvm.pom_property("kafka-broker", "kafka.version")}


def test_compose_brokers_have_the_cluster_broker_settings(services: dict[str, dict[str, Any]]) -> None:
    text = kraft_properties(1, "127.0.0.1", 1, 2, "1@127.0.0.1:2", Path("/data"), BROKERS)
    profile = dict(line.split("=", 1) for line in text.splitlines() if line)
    for name, service in kafka_services(services).items():
        env = service_env(service)
        for key, value in profile.items():
            if key not in PER_NODE:
                assert env.get("KAFKA_" + key.upper().replace(".", "_")) == value, (name, key)
        heap = Settings(_env_file=None).kafka_heap
        assert env["KAFKA_HEAP_OPTS"] == f"-Xms{heap} -Xmx{heap}", name


def test_compose_topics_have_the_cluster_topic_settings(services: dict[str, dict[str, Any]]) -> None:
    expected = cluster_defaults(Settings(_env_file=None))
    topics = service_settings(services["topics"])
    assert topics.kafka_replication_factor == expected["kafka_replication_factor"]
    assert topics.kafka_min_insync_replicas == expected["kafka_min_insync_replicas"]
