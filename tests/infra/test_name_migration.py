"""`tickflow topics migrate`: legacy `aggregated:*` keys and `aggregated_data_*min` topics on a real local
Redis and Kafka become the one bar vocabulary's `bars:*` keys and `bars_*` topics."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import redis
from confluent_kafka.admin import AdminClient, NewTopic

from infra.local.sandbox import with_topic_prefix
from infra.migrate_names import legacy_bar_topics, migrate_bar_names, new_key_of
from tickflow.clients import kafka_admin_config
from tickflow.keys import bar_key
from tickflow.settings import Settings


def test_legacy_names_map_to_the_one_vocabulary() -> None:
    settings = Settings(_env_file=None, intervals=["1m", "5m", "1h"])
    assert legacy_bar_topics(settings) == {
        "aggregated_data_1min": "bars_1m",
        "aggregated_data_5min": "bars_5m",
        "aggregated_data_60min": "bars_1h",
        "bars_1min": "bars_1m",  # a prefix kept across the upgrade keeps its own legacy suffix
        "bars_5min": "bars_5m",
        "bars_60min": "bars_1h",
    }
    assert new_key_of("aggregated:BTC-USD-SWAP:15m") == "bars:BTC-USD-SWAP:15m"
    assert new_key_of("aggregated:BTC-USD:5min") == "bars:BTC-USD:5m"
    assert new_key_of("aggregated:BTC-USD:2m") is None  # not a bar key: left alone
    assert new_key_of("latest_price:BTC-USD") is None


def test_migrate_renames_keys_creates_topics_and_deletes_legacy_topics(stack: Settings) -> None:
    token = uuid.uuid4().hex[:8]
    settings = with_topic_prefix(stack, f"m{token}_")
    legacy_prefix = f"m{token}_aggregated_data_"
    admin = AdminClient(kafka_admin_config(settings))
    legacy = [f"{legacy_prefix}{m}min" for m in (1, 5, 15)]
    for future in admin.create_topics([NewTopic(t, num_partitions=1) for t in legacy]).values():
        future.result(timeout=15)
    assert set(legacy) <= topics_when(admin, lambda names: set(legacy) <= names)  # an upgraded broker's state
    client = redis.Redis.from_url(settings.redis_url)
    renamed, superseded, other = f"M{token}-USD", f"N{token}-USD", f"aggregated_other:{token}"
    client.set(f"aggregated:{renamed}:1m", b"old-1m", ex=300)
    client.set(f"aggregated:{renamed}:15m", b"old-15m")
    client.set(f"aggregated:{superseded}:5m", b"stale")
    client.set(bar_key(superseded, "5m"), b"fresh")
    client.set(other, b"untouched")

    result = migrate_bar_names(settings, legacy_prefix=legacy_prefix)

    assert client.get(bar_key(renamed, "1m")) == b"old-1m" and 0 < client.ttl(bar_key(renamed, "1m")) <= 300
    assert client.get(bar_key(renamed, "15m")) == b"old-15m"
    assert client.get(bar_key(superseded, "5m")) == b"fresh"  # the bar job's newer bar wins
    assert not client.exists(
        f"aggregated:{renamed}:1m", f"aggregated:{renamed}:15m", f"aggregated:{superseded}:5m"
    )
    assert client.get(other) == b"untouched"
    assert result.renamed_keys[f"aggregated:{renamed}:1m"] == bar_key(renamed, "1m")
    assert f"aggregated:{superseded}:5m" in result.dropped_keys
    new = [f"m{token}_bars_{name}" for name in ("1m", "5m", "15m")]
    assert {result.created_topics[t] for t in new} == {"created"}
    assert topics_when(admin, lambda names: set(new) <= names) >= set(new)
    assert result.legacy_topics == dict(zip(legacy, new, strict=True))
    assert result.deleted_topics == []  # left in place unless asked

    again = migrate_bar_names(settings, legacy_prefix=legacy_prefix, delete_legacy=True)
    assert again.renamed_keys == {} and again.dropped_keys == []  # idempotent
    assert set(again.created_topics.values()) == {"exists"}
    assert sorted(again.deleted_topics) == sorted(legacy)
    topics = topics_when(admin, lambda names: not names & set(legacy))
    assert not topics & set(legacy) and set(new) <= topics


def topics_when(admin: AdminClient, done: Callable[[set[str]], bool], timeout_s: float = 20.0) -> set[str]:
    """The broker's topic names once ``done`` holds for them (metadata follows a create or delete
    shortly after it returns), or as they are after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not done(names := set(admin.list_topics(timeout=10).topics)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return names
