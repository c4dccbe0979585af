"""``/ready`` reports the alert service's consumer lag, equal to the offsets read with a plain consumer."""

from __future__ import annotations

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition

from infra.local.servers import ApiServer
from tickflow.settings import Settings


def test_ready_names_the_consumer_lag(api_server: ApiServer, api_settings: Settings) -> None:
    group, topic = api_settings.alert_consumer_group, api_settings.topic_anomalies
    producer = Producer({"bootstrap.servers": api_settings.kafka_bootstrap_servers})
    for i in range(12):
        producer.produce(topic, key=f"k{i}".encode(), value=b"{}")
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": api_settings.kafka_bootstrap_servers, "group.id": group})
    try:
        partitions = [TopicPartition(topic, p) for p in range(api_settings.kafka_partitions)]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
        consumer.commit(
            offsets=[TopicPartition(topic, p, end // 2) for p, end in ends.items()], asynchronous=False
        )
        expected = sum(ends[tp.partition] - tp.offset for tp in consumer.committed(partitions, timeout=10))
    finally:
        consumer.close()
    assert expected > 0
    ready = httpx.get(f"{api_server.url}/ready", timeout=10).json()
    assert (
        ready["ready"] and f"consumer lag: {group}/{topic} {expected}" in ready["checks"]["kafka"]["detail"]
    )
