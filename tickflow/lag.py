"""Consumer-group lag (records) read with an ``AdminClient``: a group's committed offsets
(``list_consumer_group_offsets``) against the partitions' end offsets (``list_offsets`` with
``OffsetSpec.latest()``), summed per topic. Shared by the streaming jobs' lag gauge and the API's ``/ready``.

A partition whose committed offset is unset counts its whole retained range (low watermark to end) as lag.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Final

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

TIMEOUT_S: Final = 10.0


def group_lag(admin: AdminClient, group: str, timeout_s: float = TIMEOUT_S) -> dict[str, int]:
    """Records ``group`` is behind per topic it has committed offsets for.

    Raises:
        confluent_kafka.KafkaException: the cluster did not answer within ``timeout_s`` (per request).
    """
    request = [ConsumerGroupTopicPartitions(group)]
    committed = admin.list_consumer_group_offsets(request, request_timeout=timeout_s)[group].result()
    partitions = [TopicPartition(tp.topic, tp.partition) for tp in committed.topic_partitions]
    if not partitions:
        return {}
    latest = _offsets(admin, partitions, OffsetSpec.latest(), timeout_s)
    earliest = _offsets(admin, partitions, OffsetSpec.earliest(), timeout_s)
    lag: dict[str, int] = defaultdict(int)
    for tp in committed.topic_partitions:
        end = latest[(tp.topic, tp.partition)]
        done = tp.offset if tp.offset >= 0 else earliest[(tp.topic, tp.partition)]
        lag[tp.topic] += max(end - done, 0)
    return dict(lag)


def _offsets(
    admin: AdminClient, partitions: list[TopicPartition], spec: OffsetSpec, timeout_s: float
) -> dict[tuple[str, int], int]:
    futures = admin.list_offsets({tp: spec for tp in partitions}, request_timeout=timeout_s)
    return {(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}
