"""Migrate the bar names used before the one bar vocabulary (issue 17) to the current ones.

Before: Redis keys ``aggregated:{symbol}:{interval}`` and Kafka topics ``aggregated_data_{N}min``
(``aggregated_data_1min``, ``_5min``, ``_15min``). Now: keys ``bars:{symbol}:{interval}``
(:func:`tickflow.keys.bar_key`) and topics ``bars_{interval}`` (:meth:`Settings.bar_topic`: ``bars_1m``...).

- **Redis**: each legacy key is renamed (``RENAME`` keeps its value and TTL); when the new key already
  exists (the bar job has written since the upgrade) it is newer, and the legacy key is deleted.
- **Kafka** cannot rename a topic. The new topics are created (as ``tickflow topics create`` does); the
  legacy topics are reported and, with ``delete_legacy``, deleted. Their records need no copy: a bar topic
  carries revisions of bars that are also stored in ``ohlcv``, and its one consumer, the indicator job,
  warms up from ``ohlcv`` when it starts without state. Its checkpoint still names the legacy topics, so it
  must be reset once: ``tickflow stream reset indicators`` (then it reads the new topics from the start).
  The bar job writes to the new topics from its next micro-batch; its checkpoint reads ``tick_data`` only
  and stays valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis
from confluent_kafka.admin import AdminClient

from infra.topics import create_topics
from tickflow.clients import kafka_admin_config, redis_kwargs
from tickflow.intervals import Interval
from tickflow.keys import LEGACY_BAR_KEY_PREFIX, bar_key
from tickflow.settings import Settings

LEGACY_TOPIC_BARS_PREFIX = "aggregated_data_"
"""Default ``topic_bars_prefix`` before the one bar vocabulary."""


@dataclass
class NameMigration:
    """What :func:`migrate_bar_names` did.

    Attributes:
        renamed_keys: legacy Redis key -> new key, for keys renamed.
        dropped_keys: legacy Redis keys deleted because the new key already held a newer bar.
        created_topics: new topic -> ``created`` | ``exists``.
        legacy_topics: legacy topic -> the new topic that replaces it, for legacy topics on the broker.
        deleted_topics: legacy topics deleted (``delete_legacy``).
    """

    renamed_keys: dict[str, str] = field(default_factory=dict)
    dropped_keys: list[str] = field(default_factory=list)
    created_topics: dict[str, str] = field(default_factory=dict)
    legacy_topics: dict[str, str] = field(default_factory=dict)
    deleted_topics: list[str] = field(default_factory=list)


def legacy_bar_topics(settings: Settings, legacy_prefix: str = LEGACY_TOPIC_BARS_PREFIX) -> dict[str, str]:
    """``{legacy topic: new topic}`` for every configured interval: ``aggregated_data_5min`` -> ``bars_5m``,
    and ``{topic_bars_prefix}5min`` -> ``{topic_bars_prefix}5m`` for a custom prefix kept across the
    upgrade."""
    names: dict[str, str] = {}
    for interval in settings.interval_list:
        new = settings.bar_topic(interval)
        for prefix in (legacy_prefix, settings.topic_bars_prefix):
            old = f"{prefix}{interval.legacy_topic_suffix}"
            if old != new:
                names[old] = new
    return names


def new_key_of(legacy_key: str) -> str | None:
    """The current key of a legacy ``aggregated:{symbol}:{interval}`` key; ``None`` when it is not one."""
    body = legacy_key.removeprefix(LEGACY_BAR_KEY_PREFIX)
    symbol, _, interval = body.rpartition(":")
    if body == legacy_key or not symbol:
        return None
    try:
        return bar_key(symbol, Interval.parse(interval).name)
    except ValueError:
        return None


def migrate_redis_keys(client: redis.Redis, result: NameMigration) -> None:
    """Rename every legacy bar key (see the module docstring); idempotent.

    Raises:
        redis.RedisError: Redis is unreachable or refused a command.
    """
    for raw in client.scan_iter(match=f"{LEGACY_BAR_KEY_PREFIX}*", count=1000):
        old = raw.decode() if isinstance(raw, bytes) else str(raw)
        new = new_key_of(old)
        if new is None:
            continue
        if client.renamenx(old, new):
            result.renamed_keys[old] = new
        else:
            client.delete(old)
            result.dropped_keys.append(old)


def migrate_bar_names(
    settings: Settings,
    *,
    delete_legacy: bool = False,
    legacy_prefix: str = LEGACY_TOPIC_BARS_PREFIX,
    timeout_s: float = 15.0,
) -> NameMigration:
    """Rename the legacy Redis bar keys, create the new bar topics, report (and optionally delete) the
    legacy bar topics. Idempotent: a second run finds nothing to rename.

    Raises:
        redis.RedisError: Redis is unreachable.
        KafkaException: the broker refused to create or delete a topic.
    """
    result = NameMigration()
    client = redis.Redis.from_url(settings.redis_url, **redis_kwargs(settings))
    try:
        migrate_redis_keys(client, result)
    finally:
        client.close()
    result.created_topics = create_topics(settings, timeout_s)
    admin = AdminClient(kafka_admin_config(settings))
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    legacy = legacy_bar_topics(settings, legacy_prefix)
    result.legacy_topics = {old: new for old, new in legacy.items() if old in existing}
    if delete_legacy and result.legacy_topics:
        deleting = admin.delete_topics(list(result.legacy_topics), request_timeout=timeout_s)
        for name, future in deleting.items():
            future.result(timeout=timeout_s)
            result.deleted_topics.append(name)
    return result
