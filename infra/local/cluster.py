"""The cluster profile of the local stack: three Kafka brokers (KRaft, static quorum of three controllers)
and a Spark standalone master with two workers, all as local processes on loopback.

Brokers ``kafka-1..3`` listen on ``cluster_kafka_ports`` (controllers on ``cluster_controller_ports``); all
three carry ``controller.quorum.voters=1@127.0.0.1:P1,2@127.0.0.1:P2,3@127.0.0.1:P3`` and are formatted with
one cluster id (``<state_dir>/kafka-cluster.id``); internal topics have three replicas and a min ISR of 2.
The Spark daemons are pyspark's own classes started through ``<pyspark>/bin/spark-class``; each worker
offers one core and ``spark_worker_memory``, and runs its executors under ``<state_dir>/spark-worker-<n>``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Final

from infra.local.process import pid_alive, read_pid, spawn, terminate
from infra.local.services import (
    CHECK_TIMEOUT_S,
    SERVICES,
    KafkaBroker,
    Postgres,
    Redis,
    Service,
    ServiceError,
    StatePaths,
    VictoriaMetrics,
    _run_out,
    kraft_properties,
    start_kafka_node,
)
from tickflow.settings import Settings

HOST: Final = "127.0.0.1"
BROKERS: Final = 3
PROFILE: Final = "cluster"


def cluster_defaults(settings: Settings) -> dict[str, Any]:
    """The settings every `tickflow` command takes as defaults while the cluster profile is up."""
    return {
        "kafka_bootstrap_servers": ",".join(f"{HOST}:{port}" for port in settings.cluster_kafka_ports),
        "kafka_replication_factor": BROKERS,
        "kafka_min_insync_replicas": BROKERS - 1,
        "spark_master": spark_master_url(settings),
    }


def spark_master_url(settings: Settings) -> str:
    """``spark://127.0.0.1:<spark_master_port>``."""
    return f"spark://{HOST}:{settings.spark_master_port}"


class ClusterBroker(KafkaBroker):
    """Broker ``node`` (1-based) of the three-node KRaft cluster; broker and controller in one JVM."""

    def __init__(self, node: int) -> None:
        self.node = node
        self.name = f"kafka-{node}"  # type: ignore[assignment]

    def address(self, settings: Settings) -> tuple[str, int]:
        return HOST, settings.cluster_kafka_ports[self.node - 1]

    def managed(self, settings: Settings) -> bool:
        return "kafka" in settings.managed_services

    def check(self, settings: Settings) -> str | None:
        """None when this broker answers metadata requests and the cluster lists it (it has registered)."""
        from confluent_kafka.admin import AdminClient

        bootstrap = "{}:{}".format(*self.address(settings))
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=CHECK_TIMEOUT_S)
        except Exception as exc:  # KafkaException on timeout / transport failure
            return f"broker at {bootstrap} does not answer: {exc}"
        finally:
            del admin
        if self.node not in metadata.brokers:
            return f"broker {self.node} at {bootstrap} has not registered with the controllers yet"
        return None

    def properties(self, settings: Settings, paths: StatePaths) -> str:
        """This broker's server.properties: its ports, the static quorum of the three, RF 3 / min ISR 2.

        Raises:
            ServiceError: ``cluster_kafka_ports`` or ``cluster_controller_ports`` do not hold three ports.
        """
        ports, controllers = settings.cluster_kafka_ports, settings.cluster_controller_ports
        if len(ports) != BROKERS or len(controllers) != BROKERS:
            raise ServiceError(f"cluster_kafka_ports and cluster_controller_ports need {BROKERS} ports each")
        voters = ",".join(f"{n}@{HOST}:{controllers[n - 1]}" for n in range(1, BROKERS + 1))
        port, controller = ports[self.node - 1], controllers[self.node - 1]
        log_dir = paths.data(self.name) / "data"
        return kraft_properties(self.node, HOST, port, controller, voters, log_dir, BROKERS)

    def start(self, settings: Settings, paths: StatePaths) -> None:
        home = paths.data(self.name)
        home.mkdir(parents=True, exist_ok=True)
        config = home / "server.properties"
        config.write_text(self.properties(settings, paths))
        start_kafka_node(settings, paths, self.name, config, lambda java: _cluster_id(paths, java))


def _cluster_id(paths: StatePaths, java: list[str]) -> str:
    """The one cluster id of the three brokers: made once (``StorageTool random-uuid``), kept in the state
    dir."""
    stored = paths.root / "kafka-cluster.id"
    with _CLUSTER_ID:  # the brokers start from threads of their own
        if not stored.exists():
            stored.parent.mkdir(parents=True, exist_ok=True)
            stored.write_text(_run_out(java, "kafka random-uuid").strip() + "\n")
        return stored.read_text().strip()


_CLUSTER_ID: Final = threading.Lock()


class SparkDaemon(Service):
    """A Spark standalone daemon (master or worker) run from pyspark's own jars via ``bin/spark-class``."""

    apt_package = "openjdk-17-jre-headless"
    main_class: str

    def executable(self) -> Path:
        import pyspark

        return Path(pyspark.__file__).parent / "bin" / "spark-class"

    def managed(self, settings: Settings) -> bool:
        return True

    def arguments(self, settings: Settings, paths: StatePaths) -> list[str]:
        """The daemon's command-line arguments after its main class."""
        raise NotImplementedError

    def start(self, settings: Settings, paths: StatePaths) -> None:
        spark_home = self.executable().parent.parent
        env = os.environ | {
            "SPARK_HOME": str(spark_home),
            "SPARK_LOCAL_IP": HOST,
            "SPARK_DAEMON_MEMORY": settings.spark_daemon_memory,
            "SPARK_CONF_DIR": str(paths.data("spark-conf")),  # no stray spark-defaults.conf
            "PYSPARK_PYTHON": sys.executable,  # executors' Python workers: the venv with Tickflow's packages
        }
        paths.data("spark-conf").mkdir(parents=True, exist_ok=True)
        argv = [str(self.executable()), self.main_class, *self.arguments(settings, paths)]
        spawn(argv, paths.log(self.name), paths.pid(self.name), env=env)

    def stop(self, settings: Settings, paths: StatePaths) -> bool:
        """SIGTERM, SIGKILL after 10 s, then SIGKILL whatever is left in its process group (executors)."""
        pid = read_pid(paths.pid(self.name))
        stopped = pid is not None and pid_alive(pid)
        if pid is not None:
            if stopped:
                terminate(pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # spawn() made it a session (and group) leader
        paths.pid(self.name).unlink(missing_ok=True)
        return stopped

    def _master_state(self, settings: Settings) -> tuple[dict | None, str | None]:
        import httpx

        url = f"http://{HOST}:{settings.spark_master_ui_port}/json/"
        try:
            response = httpx.get(url, timeout=CHECK_TIMEOUT_S)
        except httpx.HTTPError as exc:
            return None, f"Spark master UI {url} does not answer: {exc}"
        if response.status_code != 200:
            return None, f"Spark master UI {url} answered {response.status_code}"
        return response.json(), None


class SparkMaster(SparkDaemon):
    """The standalone master on ``spark_master_port`` (web UI and JSON state on ``spark_master_ui_port``)."""

    name = "spark-master"  # type: ignore[assignment]
    main_class = "org.apache.spark.deploy.master.Master"

    def address(self, settings: Settings) -> tuple[str, int]:
        return HOST, settings.spark_master_port

    def arguments(self, settings: Settings, paths: StatePaths) -> list[str]:
        return ["--host", HOST, "--port", str(settings.spark_master_port), "--webui-port",
                str(settings.spark_master_ui_port)]  # fmt: skip

    def check(self, settings: Settings) -> str | None:
        state, problem = self._master_state(settings)
        if state is None:
            return problem
        return None if state.get("status") == "ALIVE" else f"master status {state.get('status')}"


class SparkWorker(SparkDaemon):
    """Worker ``node`` (1-based): one core, ``spark_worker_memory``, web UI on its ``spark_worker_ui_ports``
    entry."""

    main_class = "org.apache.spark.deploy.worker.Worker"
    starts_after = ("spark-master",)  # a worker that finds no master retries only after 5-15 s

    def __init__(self, node: int) -> None:
        self.node = node
        self.name = f"spark-worker-{node}"  # type: ignore[assignment]

    def address(self, settings: Settings) -> tuple[str, int]:
        return HOST, settings.spark_worker_ui_ports[self.node - 1]

    def arguments(self, settings: Settings, paths: StatePaths) -> list[str]:
        work = paths.data(self.name)
        work.mkdir(parents=True, exist_ok=True)
        ui_port = str(self.address(settings)[1])
        return ["--host", HOST, "--cores", "1", "--memory", settings.spark_worker_memory, "--webui-port",
                ui_port, "--work-dir", str(work), spark_master_url(settings)]  # fmt: skip

    def check(self, settings: Settings) -> str | None:
        """None when the master lists this worker (by its web UI port) as ALIVE and the worker answers."""
        import httpx

        state, problem = self._master_state(settings)
        if state is None:
            return problem
        port = self.address(settings)[1]
        alive = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]
        if not any(str(w.get("webuiaddress", "")).endswith(f":{port}") for w in alive):
            return f"the master lists no live worker with web UI port {port}"
        try:
            httpx.get(f"http://{HOST}:{port}/json/", timeout=CHECK_TIMEOUT_S).raise_for_status()
        except httpx.HTTPError as exc:
            return f"worker web UI on port {port} does not answer: {exc}"
        return None


def cluster_services(settings: Settings) -> tuple[Service, ...]:
    """The services of the cluster profile, in start order (brokers, stores, Spark master, workers)."""
    workers = len(settings.spark_worker_ui_ports)
    return (
        *(ClusterBroker(n) for n in range(1, BROKERS + 1)),
        *(s for s in SERVICES if isinstance(s, Postgres | Redis | VictoriaMetrics)),
        SparkMaster(),
        *(SparkWorker(n) for n in range(1, workers + 1)),
    )
