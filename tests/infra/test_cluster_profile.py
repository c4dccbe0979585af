"""The cluster profile's settings: recorded by `stack up --cluster`, the defaults of every later command of
the checkout (explicit env vars still win); its brokers' configuration."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from infra.local.cluster import ClusterBroker, cluster_defaults
from infra.local.services import Service, StatePaths
from infra.local.stack import start_services
from streaming_jobs.spark_session import standalone_options
from tickflow.profile import clear_profile, write_profile
from tickflow.settings import Settings


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("TICKFLOW_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_the_profile_gives_defaults_and_env_vars_win(tmp_path: Path, no_env: pytest.MonkeyPatch) -> None:
    defaults = cluster_defaults(Settings(_env_file=None, state_dir=tmp_path))
    write_profile(tmp_path, "cluster", defaults)
    no_env.setenv("TICKFLOW_STATE_DIR", str(tmp_path))
    no_env.setenv("TICKFLOW_SPARK_MASTER", "local[1]")
    settings = Settings(_env_file=None)
    assert settings.kafka_bootstrap_servers == "127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096"
    assert (settings.kafka_replication_factor, settings.kafka_min_insync_replicas) == (3, 2)
    assert settings.spark_master == "local[1]"
    assert Settings(_env_file=None, state_dir=tmp_path).spark_master == "local[1]"
    no_env.delenv("TICKFLOW_SPARK_MASTER")
    assert Settings(_env_file=None).spark_master == "spark://127.0.0.1:17077"
    assert clear_profile(tmp_path)
    assert Settings(_env_file=None).kafka_replication_factor == 1
    assert Settings(_env_file=None).spark_master == "local[2]"


def test_a_cluster_broker_is_in_a_static_quorum_of_three(tmp_path: Path, no_env: pytest.MonkeyPatch) -> None:
    settings = Settings(_env_file=None, state_dir=tmp_path)
    paths = StatePaths(tmp_path)
    text = ClusterBroker(2).properties(settings, paths)
    config = dict(line.split("=", 1) for line in text.splitlines() if line)
    assert config["node.id"] == "2"
    assert config["controller.quorum.voters"] == "1@127.0.0.1:29093,2@127.0.0.1:29095,3@127.0.0.1:29097"
    assert config["listeners"] == "PLAINTEXT://127.0.0.1:29094,CONTROLLER://127.0.0.1:29095"
    assert config["offsets.topic.replication.factor"] == "3"
    assert config["min.insync.replicas"] == "2"
    assert config["log.dirs"] == str(tmp_path.resolve() / "kafka-2" / "data")


def test_executors_get_the_drivers_jvm_options(tmp_path: Path, no_env: pytest.MonkeyPatch) -> None:
    settings = Settings(_env_file=None, state_dir=tmp_path)
    assert "spark.executor.extraJavaOptions" not in standalone_options(settings)
    tuned = settings.model_copy(update={"spark_java_options": "-XX:TieredStopAtLevel=1"})
    assert standalone_options(tuned)["spark.executor.extraJavaOptions"] == "-XX:TieredStopAtLevel=1"


class _Daemon(Service):
    """A service of this test: "starts" by noting the time, answers ``delay_s`` later."""

    apt_package = "none"

    def __init__(self, name: str, delay_s: float, after: tuple[str, ...], log: dict[str, float]) -> None:
        self.name = name  # type: ignore[assignment]
        self.starts_after = after
        self.delay_s = delay_s
        self.log = log

    def executable(self) -> Path:
        return Path("/bin/true")

    def check(self, settings: Settings) -> str | None:
        started = self.log.get(f"{self.name} start")
        return None if started and time.monotonic() - started >= self.delay_s else "not yet"

    def start(self, settings: Settings, paths: StatePaths) -> None:
        self.log[f"{self.name} start"] = time.monotonic()
        paths.pid(self.name).parent.mkdir(parents=True, exist_ok=True)
        paths.pid(self.name).write_text(f"{os.getpid()}\n")


def test_services_start_together_and_after_what_they_need(tmp_path: Path, no_env: pytest.MonkeyPatch) -> None:
    log: dict[str, float] = {}
    master = _Daemon("master", 0.5, (), log)
    broker = _Daemon("broker", 0.5, (), log)
    worker = _Daemon("worker", 0.1, ("master",), log)
    settings = Settings(_env_file=None, state_dir=tmp_path)
    began = time.monotonic()
    start_services([master, broker, worker], settings, StatePaths(tmp_path))
    assert log["broker start"] - log["master start"] < 0.3  # not one after the other's health
    assert log["worker start"] - log["master start"] >= 0.5  # once the master answers
    assert time.monotonic() - began < 1.0
