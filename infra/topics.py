"""Create Tickflow's Kafka topics explicitly (AdminClient), idempotently."""

from __future__ import annotations

from typing import Final

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from tickflow.clients import kafka_admin_config
from tickflow.settings import Settings

APPEND_TIME: Final = {"message.timestamp.type": "LogAppendTime"}


def create_topics(settings: Settings, timeout_s: float = 15.0) -> dict[str, str]:
    """Create every topic of ``settings.all_topics()`` with the configured partitions, replication factor,
    ``min.insync.replicas``, retention and compression. Returns ``{topic: "created" | "exists"}``.

    The tick topic stamps records with the broker's append time (``message.timestamp.type=LogAppendTime``):
    a producer cannot forge it, so the bar job can reject ticks dated in the future against it
    (``future_event_time``), and receipt -> append time is the broker stage's latency.

    An existing topic is left as it is (its partition count is reported by `describe_partitions`).

    Raises:
        KafkaException: the broker refused a topic for another reason than that it exists.
    """
    admin = AdminClient(kafka_admin_config(settings))
    config = {
        "retention.ms": str(settings.kafka_retention_ms),
        "compression.type": settings.kafka_compression,
        "min.insync.replicas": str(settings.kafka_min_insync_replicas),
    }
    if settings.kafka_compression == "none":
        config["compression.type"] = "producer"
    new = [
        NewTopic(
            name,
            num_partitions=settings.kafka_partitions,
            replication_factor=settings.kafka_replication_factor,
            config=config
            | ({"message.timestamp.type": "LogAppendTime"} if name == settings.topic_ticks else {}),
        )
        for name in settings.all_topics()
    ]
    result: dict[str, str] = {}
    for name, future in admin.create_topics(new, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
            result[name] = "created"
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            result[name] = "exists"
    return result


def describe_partitions(settings: Settings, timeout_s: float = 10.0) -> dict[str, int]:
    """``{topic: partition count}`` of Tickflow's topics that exist on the broker."""
    admin = AdminClient(kafka_admin_config(settings))
    metadata = admin.list_topics(timeout=timeout_s)
    wanted = set(settings.all_topics())
    return {name: len(t.partitions) for name, t in metadata.topics.items() if name in wanted}
