"""Bring the local stack up, down, and report its status.

``up`` is idempotent: a service that already answers at its configured address is reused (and, if this
stack did not start it, never stopped by ``down``). A service whose settings point away from loopback, or
that is not in ``managed_services``, is only checked. ``down`` stops exactly the processes ``up`` started
(recorded in PID files under ``<state_dir>/run``).

``up(cluster=True)`` starts the cluster profile instead (``infra.local.cluster``: three Kafka brokers, a Spark
standalone master and two workers, and the same stores) and records it as the active profile
(``tickflow.profile``); `status` and `down` follow the recorded profile, and `down` forgets it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from infra.local.cluster import PROFILE, ClusterBroker, cluster_defaults, cluster_services
from infra.local.process import pid_alive, read_pid
from infra.local.services import (
    SERVICES,
    Service,
    ServiceError,
    StatePaths,
    create_database,
    ensure_installed,
)
from tickflow.profile import clear_profile, read_profile, write_profile
from tickflow.settings import Settings


class State(StrEnum):
    """What `status` found for a service."""

    RUNNING = "running"  # started by this stack, answering
    EXTERNAL = "external"  # answering, not started by this stack
    DEAD = "dead"  # started by this stack, process gone or not answering
    DOWN = "down"  # not answering, not started by this stack


@dataclass(frozen=True)
class ServiceStatus:
    """One line of `tickflow stack status`."""

    name: str
    address: str
    managed: bool
    state: State
    pid: int | None
    detail: str

    @property
    def healthy(self) -> bool:
        return self.state in (State.RUNNING, State.EXTERNAL)


def cluster_active(settings: Settings) -> bool:
    """True when the stack under ``settings.state_dir`` runs the cluster profile."""
    return read_profile(settings.state_dir).get("name") == PROFILE


def services(settings: Settings) -> tuple[Service, ...]:
    """The services of the active profile (single broker, or the cluster)."""
    return cluster_services(settings) if cluster_active(settings) else SERVICES


def status(settings: Settings) -> list[ServiceStatus]:
    """The truth about every service: our PID alive or not, and a real client's health check."""
    paths = StatePaths(settings.state_dir)
    return [_status(service, settings, paths) for service in services(settings)]


def up(settings: Settings, *, cluster: bool = False) -> list[ServiceStatus]:
    """Start what is managed and not yet answering (together: each in a thread, after the services it
    ``starts_after``), wait until all answer, and create the database.

    With ``cluster``, start the cluster profile and record it as the active profile; its settings defaults
    (``infra.local.cluster.cluster_defaults``) replace the broker address, replication and Spark master.

    Raises:
        ServiceError: a service did not become healthy in ``service_start_timeout_s`` (with its log tail),
            an unmanaged service does not answer, packages are missing and cannot be installed, or the
            single-broker profile still runs when the cluster is asked for.
    """
    paths = StatePaths(settings.state_dir)
    wanted: tuple[Service, ...] = SERVICES
    if cluster:
        single = read_pid(paths.pid("kafka"))
        if single is not None and pid_alive(single):
            raise ServiceError("the single-broker stack is up here; run `tickflow stack down` first")
        settings = settings.model_copy(update=cluster_defaults(settings))
        wanted = cluster_services(settings)
    elif cluster_active(settings):
        wanted = cluster_services(settings)
    with ThreadPoolExecutor(max_workers=len(wanted), thread_name_prefix="stack-check") as pool:
        found = dict(zip(wanted, pool.map(lambda s: s.check(settings), wanted), strict=True))
    to_start = [s for s in wanted if found[s] is not None]
    unmanaged = [s for s in to_start if not s.managed(settings)]
    if unmanaged:
        problems = "; ".join(f"{s.name}: {found[s]}" for s in unmanaged)
        raise ServiceError(f"not managed by the local stack and not reachable: {problems}")
    ensure_installed(to_start)
    start_services(to_start, settings, paths)
    create_database(settings)
    if cluster:
        write_profile(settings.state_dir, PROFILE, cluster_defaults(settings))
    return [_status(service, settings, paths) for service in wanted]


def down(settings: Settings) -> list[str]:
    """Stop the services this stack started (of either profile), forget the active profile; their names."""
    paths = StatePaths(settings.state_dir)
    every = {s.name: s for s in (*cluster_services(settings), *SERVICES)}
    # the brokers shut down together: the last one alone would wait for a controller quorum that is gone
    signalled = set()
    for broker in (s for s in every.values() if isinstance(s, ClusterBroker)):
        pid = read_pid(paths.pid(broker.name))
        if pid is not None and pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                signalled.add(broker.name)
    stopped = [s.name for s in reversed(every.values()) if s.stop(settings, paths) or s.name in signalled]
    clear_profile(settings.state_dir)
    return stopped


def _status(service: Service, settings: Settings, paths: StatePaths) -> ServiceStatus:
    host, port = service.address(settings)
    pid = read_pid(paths.pid(service.name))
    ours = pid is not None and pid_alive(pid)
    problem = service.check(settings)
    if problem is None:
        state = State.RUNNING if ours else State.EXTERNAL
    elif pid is not None:
        state = State.DEAD
    else:
        state = State.DOWN
    if state is State.DEAD and not ours:
        problem = f"process {pid} is gone; {problem}"
    version = service.version(paths) if state is State.RUNNING else None
    return ServiceStatus(
        service.name,
        f"{host}:{port}",
        service.managed(settings),
        state,
        pid if ours else None,
        problem or (f"ok ({version})" if version else "ok"),
    )


def start_services(to_start: list[Service], settings: Settings, paths: StatePaths) -> None:
    """Start ``to_start`` concurrently (each in a thread, once the services it ``starts_after`` answer) and
    wait until every one answers.

    Raises:
        ServiceError: the first service that failed to start or to become healthy.
    """
    starting = {service.name for service in to_start}
    with ThreadPoolExecutor(max_workers=max(1, len(to_start)), thread_name_prefix="stack-up") as pool:
        started: dict[str, Future[None]] = {}

        def start(service: Service) -> None:
            for name in service.starts_after:
                if name in starting:
                    started[name].result()
            service.start(settings, paths)
            _wait_healthy(service, settings, paths)

        for service in to_start:  # the order of ``services()``: a service follows those it starts after
            started[service.name] = pool.submit(start, service)
        for future in started.values():
            future.result()


def _wait_healthy(service: Service, settings: Settings, paths: StatePaths) -> None:
    deadline = time.monotonic() + settings.service_start_timeout_s
    while True:
        problem = service.check(settings)
        if problem is None:
            return
        pid = read_pid(paths.pid(service.name))
        exited = pid is None or not pid_alive(pid)
        if exited or time.monotonic() > deadline:
            log = paths.log(service.name)
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else "(no log)"
            reason = "exited" if exited else "did not become healthy in time"
            raise ServiceError(f"{service.name} {reason}: {problem}\n--- {log} ---\n{tail}")
        time.sleep(0.1)
