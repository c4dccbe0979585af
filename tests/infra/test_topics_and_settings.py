"""Kafka topics are created explicitly and idempotently; settings come from TICKFLOW_* variables."""

from __future__ import annotations

import pytest

from infra.topics import create_topics, describe_partitions
from tickflow.intervals import Interval
from tickflow.settings import Settings


def test_topics_exist_with_configured_partitions_and_create_is_idempotent(fresh_topics: Settings) -> None:
    assert describe_partitions(fresh_topics) == {name: 6 for name in fresh_topics.all_topics()}
    assert set(create_topics(fresh_topics).values()) == {"exists"}
    assert fresh_topics.bar_topic(Interval.parse("5m")).endswith("bars_5m")


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKFLOW_SYMBOLS", "BTC-USD, AAPL")
    monkeypatch.setenv("TICKFLOW_INTERVALS", '["1m","15m"]')
    monkeypatch.setenv("TICKFLOW_KAFKA_PARTITIONS", "12")
    monkeypatch.setenv("TICKFLOW_API_AUTH", "true")
    settings = Settings(_env_file=None)
    assert settings.symbols == ["BTC-USD", "AAPL"]
    assert [i.minutes for i in settings.interval_list] == [1, 15]
    assert settings.kafka_partitions == 12 and settings.api_auth is True
    assert Settings(_env_file=None, **{}).model_dump() == settings.model_dump()  # env is re-read
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    assert Settings(_env_file=None).model_dump() == settings.model_dump()  # to_env round-trips


def test_unknown_interval_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown interval '2m'"):
        Settings(_env_file=None, intervals=["1m", "2m"])
