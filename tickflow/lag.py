"""Consumer-group lag (records): a group's committed offsets on its topics against the partitions' end
offsets, summed per topic. Shared by the indicator job's lag gauge and the API's ``/ready``.

The offsets are read with a ``Consumer`` that carries the group's id and never subscribes, so it never joins
the group: ``committed()`` asks the group coordinator (OffsetFetch) and finds the coordinator again when it
moves. Not with ``AdminClient.list_consumer_group_offsets``: with librdkafka 2.16.0 that call kills the
process when a broker of a multi-broker cluster dies: SIGSEGV when an admin OffsetFetch is answered
NOT_COORDINATOR (librdkafka issue #5040, open; it killed the API in the store-outage fault test), or SIGABRT
on ``rd_kafka_enq_once_del_source_return: Assertion `eonce->refcnt > 0'`` (issue #4605, open). Measured on
the local cluster, reading six groups in a loop while one broker was SIGKILLed and restarted: the admin
reader died in 3 of 3 rounds, this reader in none (``tests/faults/test_kafka_leader_kill.py`` keeps it so).

A partition without a committed offset counts its whole retained range (low watermark to end) as lag; a
group with no committed offset on any partition of its topics has no lag to report (``{}``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Final

from confluent_kafka import Consumer, KafkaException, TopicPartition

TIMEOUT_S: Final = 10.0


class GroupLag:
    """Reads the lag of consumer group ``group`` on ``topics`` (thread-safe: one librdkafka handle)."""

    def __init__(self, config: dict[str, Any], group: str, topics: Sequence[str]) -> None:
        """``config``: librdkafka settings of the cluster (``tickflow.clients.kafka_admin_config``)."""
        self.group = group
        self.topics = tuple(topics)
        self._consumer = Consumer(config | {"group.id": group, "enable.auto.commit": False})

    def read(self, timeout_s: float = TIMEOUT_S) -> dict[str, int]:
        """Records the group is behind per topic; ``{}`` when it has committed no offset on its topics.

        Raises:
            confluent_kafka.KafkaException: the cluster did not answer within ``timeout_s`` (per request),
                or a topic does not exist.
        """
        partitions = []
        for topic in self.topics:
            metadata = self._consumer.list_topics(topic, timeout=timeout_s).topics[topic]
            if metadata.error is not None:
                raise KafkaException(metadata.error)
            partitions += [TopicPartition(topic, partition) for partition in sorted(metadata.partitions)]
        committed = self._consumer.committed(partitions, timeout=timeout_s)
        if all(tp.offset < 0 for tp in committed):
            return {}
        lag: dict[str, int] = defaultdict(int)
        for tp in committed:
            low, end = self._consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout_s)
            lag[tp.topic] += max(end - (tp.offset if tp.offset >= 0 else low), 0)
        return dict(lag)

    def close(self) -> None:
        self._consumer.close()
