"""The four local services of the stack: how each is installed, started, health-checked and stopped.

Each service runs detached with its log under ``<state_dir>/logs`` and its PID under ``<state_dir>/run``.
The health checks use the real clients the pipeline uses (confluent-kafka, psycopg2, redis-py, httpx).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from infra.local.process import pid_alive, read_pid, spawn, terminate
from tickflow import jvm
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
    starts_after: tuple[str, ...] = ()
    """Services that must answer before this one is started (its start would fail or wait without them)."""

    @abstractmethod
    def executable(self) -> Path:
        """Path of the binary that runs the service (may not exist before installation)."""

    @abstractmethod
    def check(self, settings: Settings) -> str | None:
        """None when the service answers a real client at the configured address, else the error."""

    @abstractmethod
    def start(self, settings: Settings, paths: StatePaths) -> None:
        """Start the service detached and record its PID in ``paths.pid(name)``."""

    def version(self, paths: StatePaths) -> str | None:
        """The version of the server this stack started, when it can tell."""
        return None

    def address(self, settings: Settings) -> tuple[str, int]:
        """(host, port) the service answers at."""
        return service_address(settings, self.name)

    def managed(self, settings: Settings) -> bool:
        """True when `stack up` may start this service here (listed in ``managed_services``, on loopback)."""
        return settings.is_managed(self.name)

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
    """Apache Kafka in KRaft mode: one combined broker + controller node, jars from Maven Central.

    The jars come from the pinned POM ``infra/maven/kafka-broker/pom.xml`` (``tickflow.jvm``); the broker
    runs in its own JVM (heap ``kafka_heap``) with its log dir under ``<state_dir>/kafka/data``, formatted
    once, so topics, records and committed consumer-group offsets survive ``stack down`` / ``stack up``.
    The controller listens on ``kafka_controller_port`` (a static single-voter quorum).
    """

    name: ServiceName = "kafka"
    apt_package = "openjdk-17-jre-headless"

    def executable(self) -> Path:
        return Path(shutil.which("java") or "/usr/bin/java")

    def check(self, settings: Settings) -> str | None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers, "log_level": 0})
        try:
            admin.list_topics(timeout=CHECK_TIMEOUT_S)
        except Exception as exc:  # KafkaException on timeout / transport failure
            return f"broker at {settings.kafka_bootstrap_servers} does not answer: {exc}"
        finally:
            del admin  # librdkafka stops retrying once the handle is gone
        return None

    def version(self, paths: StatePaths) -> str | None:
        """``Apache Kafka <version>`` as our broker logged it at start-up (``Kafka version: 4.1.1``)."""
        log = paths.log(self.name)
        try:
            found = re.findall(r"Kafka version: (\S+)", log.read_text(errors="replace"))
        except OSError:
            return None
        return f"Apache Kafka {found[-1]}" if found else None

    def start(self, settings: Settings, paths: StatePaths) -> None:
        host, port = service_address(settings, "kafka")
        home = paths.data(self.name)
        home.mkdir(parents=True, exist_ok=True)
        config = home / "server.properties"
        config.write_text(_kraft_properties(host, port, settings.kafka_controller_port, home / "data"))
        start_kafka_node(settings, paths, self.name, config, lambda java: _run_out(java, "kafka random-uuid"))

    def stop(self, settings: Settings, paths: StatePaths) -> bool:
        """SIGTERM (a controlled shutdown that flushes the logs), SIGKILL after 60 s."""
        pid = read_pid(paths.pid(self.name))
        stopped = pid is not None and pid_alive(pid)
        if stopped:
            terminate(pid, timeout_s=60.0)
        paths.pid(self.name).unlink(missing_ok=True)
        return stopped


OFFSETS_TOPIC_PARTITIONS: Final = 6
"""Partitions of ``__consumer_offsets`` on the local brokers (Kafka's default is 50): a group's coordinator
is the leader of partition ``abs(Java hashCode of the group id) % 6``."""

_TOOL_JVM_OPTIONS: Final = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
"""JVM options of Kafka's short-lived tools (random-uuid, format): about 30% less CPU time than the
default (1.5 s instead of 2.2 s a run), which counts when three brokers are formatted at once."""


def start_kafka_node(
    settings: Settings, paths: StatePaths, name: str, config: Path, cluster_id: Callable[[list[str]], str]
) -> None:
    """Format the log dir of the node configured by ``config`` once (with ``cluster_id(java argv)``) and
    start it detached as service ``name`` (heap ``kafka_heap``, log4j2 config beside ``config``).

    Raises:
        ServiceError: the jars cannot be had, or formatting failed.
    """
    try:
        jars = jvm.classpath("kafka-broker")
    except jvm.ClasspathError as exc:
        raise ServiceError(str(exc)) from exc
    home = config.parent
    log_config = home / "log4j2.properties"
    log_config.write_text(_LOG4J2)
    java = [shutil.which("java") or "/usr/bin/java", "-cp", os.pathsep.join(map(str, jars))]
    if not (home / "data" / "meta.properties").exists():
        tool = [java[0], *_TOOL_JVM_OPTIONS, *java[1:], "kafka.tools.StorageTool"]
        uuid = cluster_id([*tool, "random-uuid"]).strip()
        format_argv = [*tool, "format", "-t", uuid, "-c", str(config)]
        _run(format_argv, "kafka storage format")
    spawn(
        [
            java[0],
            f"-Xms{settings.kafka_heap}",
            f"-Xmx{settings.kafka_heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log_config}",
            f"-Dkafka.logs.dir={home}",
            *java[1:],
            "kafka.Kafka",
            str(config),
        ],
        paths.log(name),
        paths.pid(name),
    )


def _kraft_properties(host: str, port: int, controller_port: int, log_dir: Path) -> str:
    """server.properties of a single combined broker + controller node (static quorum of one voter)."""
    return kraft_properties(1, host, port, controller_port, f"1@{host}:{controller_port}", log_dir, 1)


def kraft_properties(
    node_id: int, host: str, port: int, controller_port: int, voters: str, log_dir: Path, replicas: int
) -> str:
    """server.properties of a combined broker + controller node in the static quorum ``voters``
    (``id@host:port,...``); internal topics get ``replicas`` replicas and a min ISR of ``replicas - 1``
    (at least 1), the default for created topics alike."""
    min_isr = max(1, replicas - 1)
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
            f"advertised.listeners=PLAINTEXT://{host}:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={log_dir}",
            "num.partitions=1",
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={min_isr}",
            "unclean.leader.election.enable=false",
            f"offsets.topic.replication.factor={replicas}",
            f"offsets.topic.num.partitions={OFFSETS_TOPIC_PARTITIONS}",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={min_isr}",
            f"share.coordinator.state.topic.replication.factor={replicas}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "log.retention.check.interval.ms=60000",
            "",
        ]
    )


_LOG4J2: Final = """\
# Kafka broker logging of the local stack: INFO to stdout (the stack's kafka.log), noisy loggers at WARN.
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.log.name = kafka.log
logger.log.level = WARN
logger.coordinator.name = org.apache.kafka.coordinator
logger.coordinator.level = WARN
"""


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
    _run_out(argv, what)


def _run_out(argv: list[str], what: str) -> str:
    """Run ``argv`` to completion and return its stdout.

    Raises:
        ServiceError: it exited non-zero (with the end of its output).
    """
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(f"{what} failed ({result.returncode}):\n{(result.stdout + result.stderr)[-2000:]}")
    return result.stdout
