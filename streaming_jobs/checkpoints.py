"""Checkpoints of the streaming queries: where they live, how to reset them, and the one clear line a job
prints when a checkpoint no longer matches its Kafka topic.

Each query keeps its Kafka offsets (and, for the stateful ones, its state) in
``<checkpoint_dir>/<query>``. The Kafka source runs with ``failOnDataLoss=true``: when the offsets a
checkpoint holds are gone from the topic (the topic was deleted or recreated, retention passed them, or the
settings point at another cluster), the query fails instead of skipping data silently. The job then stops
with ``CheckpointMismatch`` naming the query and the fix, ``tickflow stream reset <job>``, which deletes the
job's checkpoints so that its next run starts from ``spark_starting_offsets``. The same applies to a
checkpoint whose state another version of a query wrote (its aggregation buffers changed, so Spark refuses
the stored state schema): the reset query recomputes its bars from the topic, and the sinks' idempotent
upserts overwrite them.

One process at a time runs a job on its checkpoints: the job holds ``<checkpoint_dir>/<job>.lock``
(``exclusive``) while it runs, and a second one stops at once with ``CheckpointInUse``. Two jobs on one
checkpoint would interleave their offset and commit logs, and bars could be lost.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final, Literal

from tickflow.settings import Settings

JobName = Literal["bars", "indicators"]

JOB_QUERIES: Final[dict[JobName, tuple[str, ...]]] = {
    "bars": ("bars", "ticks"),
    "indicators": ("indicators",),
}
"""The streaming queries (and checkpoint folders) of each job."""

_DATA_LOSS_MARKERS: Final = ("failOnDataLoss", "some data may have been lost", "were deleted")
_STATE_SCHEMA_MARKERS: Final = (
    "STATE_STORE_KEY_SCHEMA_NOT_COMPATIBLE",
    "STATE_STORE_VALUE_SCHEMA_NOT_COMPATIBLE",
    "STREAMING_STATEFUL_OPERATOR_NOT_MATCH_IN_STATE_METADATA",
)


class CheckpointMismatch(RuntimeError):
    """A query's checkpoint holds Kafka offsets its topic no longer has; the message names the fix."""


class CheckpointInUse(RuntimeError):
    """Another process runs the job on the same checkpoints; the message names it."""


@contextmanager
def exclusive(settings: Settings, job: JobName) -> Iterator[Path]:
    """Hold ``<checkpoint_dir>/<job>.lock`` (an exclusive ``flock``, released when the process ends, even
    by SIGKILL) while the block runs; the file names the holder (pid and host).

    Yields:
        The lock file's path.

    Raises:
        CheckpointInUse: at once, when another process holds it.
    """
    path = Path(settings.checkpoint_dir).resolve() / f"{job}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "a process"
            raise CheckpointInUse(
                f"the {job} job already runs on the checkpoints under {path.parent} ({holder}, {path}); "
                "stop it first: two jobs on one checkpoint would corrupt it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        try:
            yield path
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def checkpoint(settings: Settings, query: str) -> str:
    """Absolute checkpoint directory of ``query``."""
    return str((Path(settings.checkpoint_dir) / query).resolve())


def reset(settings: Settings, job: JobName) -> list[str]:
    """Delete the checkpoints of ``job``'s queries; return the folders that existed and were deleted."""
    deleted = []
    for query in JOB_QUERIES[job]:
        path = Path(checkpoint(settings, query))
        if path.exists():
            shutil.rmtree(path)
            deleted.append(str(path))
    return deleted


def mismatch(error: BaseException, job: JobName, settings: Settings) -> CheckpointMismatch | None:
    """The ``CheckpointMismatch`` that ``error`` (a failed query's exception) amounts to, or None when it is
    another failure."""
    text = str(error)
    if any(marker.lower() in text.lower() for marker in _DATA_LOSS_MARKERS):
        cause = (
            "holds Kafka offsets that the topic no longer has (topic deleted or recreated, records expired, "
            f"or another cluster at {settings.kafka_bootstrap_servers})"
        )
    elif any(marker in text for marker in _STATE_SCHEMA_MARKERS):
        cause = "holds state that another version of the query wrote (its aggregation changed)"
    else:
        return None
    named = re.search(r"Identifier: (\S+)", text)
    query = named.group(1) if named else JOB_QUERIES[job][0]
    return CheckpointMismatch(
        f"query {query!r}: its checkpoint {checkpoint(settings, query)} {cause}; to start over from the "
        f"topic as it is, run: tickflow stream reset {job}"
    )
