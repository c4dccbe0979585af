"""The Kafka and Spark clusters of docker-compose.yml: sizes, replication, versions, wiring."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pyspark

from tests.infra.deploy.compose import (
    DOCKERFILE,
    SPARK_APP,
    service_env,
    service_settings,
    spark_confs,
    spark_submit_options,
    upstream,
)


def kafka_connector_coordinate() -> str:
    """Maven coordinate of the Kafka connector matching the installed pyspark (Scala binary version of
    its jars, Spark version)."""
    jars = Path(pyspark.__file__).parent / "jars"
    (scala_jar,) = jars.glob("scala-library-*.jar")
    scala = re.fullmatch(r"scala-library-(\d+\.\d+)\.\d+\.jar", scala_jar.name)[1]
    return f"org.apache.spark:spark-sql-kafka-0-10_{scala}:{pyspark.__version__}"


def dockerfile_args() -> dict[str, str]:
    text = DOCKERFILE.read_text(encoding="utf-8")
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))


def brokers(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {n: service_env(s) for n, s in services.items() if s.get("image", "").startswith("apache/kafka:")}


def drivers(services: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """``{service: spark-submit command}``."""
    return {n: s["command"] for n, s in services.items() if s.get("command", [None])[0] == "spark-submit"}


def workers(services: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    worker_class = "org.apache.spark.deploy.worker.Worker"
    return {n: s["command"] for n, s in services.items() if worker_class in s.get("command", [])}


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_kafka_is_three_kraft_brokers_with_rf3_and_min_isr2(services: dict[str, dict[str, Any]]) -> None:
    found = brokers(services)
    assert len(found) == 3
    node_ids = {name: int(env["KAFKA_NODE_ID"]) for name, env in found.items()}
    assert len(set(node_ids.values())) == 3
    for name, env in found.items():
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        voters = set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(","))
        assert voters == {f"{node_ids[b]}@{services[b]['hostname']}:9093" for b in found}, name
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert f"PLAINTEXT://{services[name]['hostname']}:19092" in env["KAFKA_ADVERTISED_LISTENERS"]
    (cluster_id,) = {env["CLUSTER_ID"] for env in found.values()}
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16, "KRaft cluster ids are 16-byte UUIDs"
    topics = service_settings(services["topics"])
    assert topics.kafka_replication_factor == len(found)


def test_spark_versions_match_the_installed_pyspark(services: dict[str, dict[str, Any]]) -> None:
    coordinate = kafka_connector_coordinate()
    args = dockerfile_args()
    assert args["PYSPARK_VERSION"] == pyspark.__version__
    assert args["SPARK_KAFKA_PACKAGE"] == coordinate
    assert set(drivers(services)) == {"bars", "indicators"}
    for name, command in drivers(services).items():
        assert spark_submit_options(command)["--packages"] == [coordinate], name


def test_spark_drivers_use_the_cluster_and_the_native_kafka_source(
    services: dict[str, dict[str, Any]],
) -> None:
    master = services["spark-master"]["command"]
    master_url = f"spark://{option(master, '--host')}:{option(master, '--port')}"
    for name, command in workers(services).items():
        assert command[-1] == master_url, name
    for name, command in drivers(services).items():
        settings = service_settings(services[name])
        assert spark_submit_options(command)["--master"] == [master_url], name
        assert settings.spark_master == master_url, name
        assert spark_confs(command)["spark.driver.host"] == services[name]["hostname"], name
        assert set(workers(services)) <= upstream(services, name), f"{name} starts before the workers"


def gibibytes(size: str) -> float:
    """A Spark memory size (``512m``, ``2g``) in GiB."""
    number, unit = re.fullmatch(r"(\d+)([mg])", size.lower()).groups()
    return int(number) / (1024 if unit == "m" else 1)


def test_spark_jobs_fit_on_the_workers(services: dict[str, dict[str, Any]]) -> None:
    """Standalone mode gives an application every free core unless capped: the caps must add up, and
    so must the executors' memory."""
    worker_cores = [int(option(command, "--cores")) for command in workers(services).values()]
    worker_memory = [gibibytes(option(command, "--memory")) for command in workers(services).values()]
    assert len(worker_cores) == 2
    cores = memory = 0.0
    for command in drivers(services).values():
        options = spark_submit_options(command)
        executor_cores = int(options["--executor-cores"][0])
        executor_memory = gibibytes(options["--executor-memory"][0])
        assert executor_cores <= min(worker_cores) and executor_memory <= min(worker_memory)
        total = int(options["--total-executor-cores"][0])
        cores += total
        memory += total // executor_cores * executor_memory
    assert cores <= sum(worker_cores)
    assert memory <= sum(worker_memory)


def test_checkpoints_are_shared_by_drivers_and_workers(services: dict[str, dict[str, Any]]) -> None:
    """Executors write the state store under the checkpoint dir: every worker mounts the same volume."""
    for name in drivers(services):
        path = str(service_settings(services[name]).checkpoint_dir)
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
        volume = mounts[path]
        for worker in workers(services):
            assert f"{volume}:{path}" in services[worker]["volumes"], worker


def test_spark_app_file_is_copied_where_spark_submit_runs_it() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    copy = re.search(r"^COPY (?P<src>.*infra/docker/spark_app\.py.*) (?P<dest>\S+)$", text, re.MULTILINE)
    assert copy is not None
    assert Path(copy["dest"]) / "spark_app.py" == Path(SPARK_APP)
