"""The cluster profile's settings: recorded by `stack up --cluster`, the defaults of every later command of
the checkout (explicit env vars still win); its brokers' configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infra.local.cluster import ClusterBroker, cluster_defaults
from infra.local.services import StatePaths
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
