"""Bring the local stack up, down, and report its status.

``up`` is idempotent: a service that already answers at its configured address is reused (and, if this
stack did not start it, never stopped by ``down``). A service whose settings point away from loopback, or
that is not in ``managed_services``, is only checked. ``down`` stops exactly the processes ``up`` started
(recorded in PID files under ``<state_dir>/run``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from infra.local.process import pid_alive, read_pid
from infra.local.services import (
    SERVICES,
    Service,
    ServiceError,
    StatePaths,
    create_database,
    ensure_installed,
)
from tickflow.settings import Settings, service_address


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


def status(settings: Settings) -> list[ServiceStatus]:
    """The truth about every service: our PID alive or not, and a real client's health check."""
    paths = StatePaths(settings.state_dir)
    return [_status(service, settings, paths) for service in SERVICES]


def up(settings: Settings) -> list[ServiceStatus]:
    """Start what is managed and not yet answering, create the database, and wait until all answer.

    Raises:
        ServiceError: a service did not become healthy in ``service_start_timeout_s`` (with its log tail),
            an unmanaged service does not answer, or packages are missing and cannot be installed.
    """
    paths = StatePaths(settings.state_dir)
    to_start = [s for s in SERVICES if s.check(settings) is not None]
    unmanaged = [s for s in to_start if not settings.is_managed(s.name)]
    if unmanaged:
        problems = "; ".join(f"{s.name}: {s.check(settings)}" for s in unmanaged)
        raise ServiceError(f"not managed by the local stack and not reachable: {problems}")
    ensure_installed(to_start)
    for service in to_start:
        service.start(settings, paths)
    for service in to_start:
        _wait_healthy(service, settings, paths)
    create_database(settings)
    return status(settings)


def down(settings: Settings) -> list[str]:
    """Stop the services this stack started; return their names."""
    paths = StatePaths(settings.state_dir)
    return [s.name for s in reversed(SERVICES) if s.stop(settings, paths)]


def _status(service: Service, settings: Settings, paths: StatePaths) -> ServiceStatus:
    host, port = service_address(settings, service.name)
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
        settings.is_managed(service.name),
        state,
        pid if ours else None,
        problem or (f"ok ({version})" if version else "ok"),
    )


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
