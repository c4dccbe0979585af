"""Consumer lag (records): how far each reader of a topic is behind the topic's end, per topic.

Two kinds of readers:

- Kafka consumer groups (the alert service): :class:`tickflow.lag.GroupLag` (committed offsets against end
  offsets), exported as ``tickflow_consumer_group_lag_records{group, topic}`` by
  :class:`GroupLagMonitor`.
- Spark queries: Spark's Kafka source keeps its offsets in the checkpoint, not in a group. Each query
  progress carries the batch's ``endOffset`` and the ``latestOffset`` the source saw; :func:`spark_lag`
  turns them into records behind per topic (``streaming_jobs.bars.metrics`` exports it as
  ``tickflow_bars_consumer_lag_records{query, topic}``).
"""

from __future__ import annotations

import threading
from typing import Final

import orjson
import structlog
from confluent_kafka import KafkaException
from prometheus_client import Gauge

from tickflow.clients import kafka_admin_config
from tickflow.lag import TIMEOUT_S, GroupLag
from tickflow.settings import Settings

log = structlog.get_logger(__name__)

GROUP_LAG: Final = Gauge(
    "tickflow_consumer_group_lag_records",
    "Records a Kafka consumer group is behind the end of a topic (end offset - committed offset, summed over "
    "the topic's partitions).",
    ["group", "topic"],
)


def spark_lag(end_offset: str | None, latest_offset: str | None) -> dict[str, int]:
    """Records behind per topic of one Spark Kafka source progress: ``latestOffset - endOffset`` summed
    over partitions (both JSON ``{"topic": {"partition": offset}}``); ``{}`` when either is missing."""
    if not end_offset or not latest_offset:
        return {}
    try:
        end, latest = orjson.loads(end_offset), orjson.loads(latest_offset)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(end, dict) or not isinstance(latest, dict):
        return {}
    lag: dict[str, int] = {}
    for topic, partitions in latest.items():
        done = end.get(topic, {})
        if isinstance(partitions, dict) and isinstance(done, dict):
            lag[topic] = sum(max(int(o) - int(done.get(p, 0)), 0) for p, o in partitions.items())
    return lag


class GroupLagMonitor:
    """Exports :data:`GROUP_LAG` of ``groups`` (``{group: its topics}``) every ``interval_s`` on a daemon
    thread."""

    def __init__(self, settings: Settings, groups: dict[str, list[str]], interval_s: float = 5.0) -> None:
        config = kafka_admin_config(settings)
        self._readers = [GroupLag(config, group, topics) for group, topics in groups.items()]
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tickflow-group-lag", daemon=True)

    def update(self) -> dict[str, dict[str, int]]:
        """Read and export every group's lag now; ``{group: {topic: records}}``.

        Raises:
            confluent_kafka.KafkaException: the cluster did not answer.
        """
        lags = {reader.group: reader.read() for reader in self._readers}
        for group, topics in lags.items():
            for topic, records in topics.items():
                GROUP_LAG.labels(group, topic).set(records)
        return lags

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.update()
            except KafkaException as exc:
                log.warning("consumer lag not read", error=str(exc))
            self._stop.wait(self._interval_s)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(TIMEOUT_S * 4 + 1)
        if not self._thread.is_alive():  # a read still under way keeps its consumer: the process is ending
            for reader in self._readers:
                reader.close()
