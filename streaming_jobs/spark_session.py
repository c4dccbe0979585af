"""The SparkSession of Tickflow's streaming jobs, configured for a small machine (2 cores) by default.

The session carries Spark's Kafka connector: the four jars of ``infra/maven/spark-kafka/pom.xml``
(resolved once by Maven, see ``tickflow.jvm``) go on ``spark.jars``, which also ships them to executors.
Local mode (``spark_master`` ``local[...]``): the session is created here with the settings' master and
driver memory, and ``PYSPARK_PYTHON`` points at this interpreter so that Python workers find Tickflow's
packages. Under ``spark-submit`` (a cluster) the master, memory, Python and jars come from spark-submit and
are left alone; only the SQL settings below are applied. A ``spark://`` master (the local stack's cluster
profile) is driven from here too, in client mode, with ``standalone_options``.
"""

from __future__ import annotations

import os
import sys

from pyspark import SparkConf, SparkContext
from pyspark.java_gateway import launch_gateway
from pyspark.sql import SparkSession

from tickflow import jvm
from tickflow.settings import Settings


def launched_by_spark_submit() -> bool:
    """True inside a driver that ``spark-submit`` started (it hands the Py4J gateway over the env)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_spark(settings: Settings, app_name: str) -> SparkSession:
    """Get or create the session, with Spark's Kafka connector on ``spark.jars``.

    Settings applied: ``spark.sql.shuffle.partitions`` = ``spark_shuffle_partitions`` (few partitions keep a
    stateful micro-batch at ~0.5 s instead of ~13 s with Spark's 200; it is stored in a query's checkpoint
    at its first run), session time zone UTC, console progress off, FAIR scheduling (streaming queries
    started in their own pools share the task slots instead of queueing behind each other's jobs), and in
    local mode the master, ``spark.driver.memory``, the web UI (off by default) and ``spark_java_options``.

    Raises:
        tickflow.jvm.ClasspathError: the connector's jars are not cached and Maven cannot fetch them.
    """
    options = {
        "spark.app.name": app_name,
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": "false",
        "spark.scheduler.mode": "FAIR",
    }
    if not launched_by_spark_submit():
        os.environ["PYSPARK_PYTHON"] = sys.executable
        options |= {
            "spark.master": settings.spark_master,
            "spark.driver.memory": settings.spark_driver_memory,
            "spark.ui.enabled": str(settings.spark_ui_enabled).lower(),
            "spark.jars": ",".join(str(jar) for jar in jvm.classpath("spark-kafka")),
        }
        if settings.spark_java_options:
            options["spark.driver.extraJavaOptions"] = settings.spark_java_options
        if settings.spark_master.startswith("spark://"):
            options |= standalone_options(settings)
        _launch_own_session_gateway(SparkConf().setAll(list(options.items())))
    builder = SparkSession.builder
    for key, value in options.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def standalone_options(settings: Settings) -> dict[str, str]:
    """Options of a driver on this machine whose executors run on a Spark standalone cluster (``spark://``).

    Executors get ``spark_executor_memory``, ``spark_executor_cores`` and ``spark_java_options``; their
    Python workers run this interpreter (the cluster's workers are on this machine, so the venv is theirs
    too); the driver binds and advertises loopback, where the executors fetch the ``spark.jars`` it serves.
    Checkpoints stay on local disk, which every worker of a one-machine cluster reaches.
    """
    return {
        "spark.executor.memory": settings.spark_executor_memory,
        "spark.executor.cores": str(settings.spark_executor_cores),
        "spark.pyspark.python": sys.executable,
        "spark.executorEnv.PYSPARK_PYTHON": sys.executable,
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
    } | ({"spark.executor.extraJavaOptions": java} if (java := settings.spark_java_options) else {})


def _launch_own_session_gateway(conf: SparkConf) -> None:
    """Start the driver JVM in a session of its own, unless one runs already.

    A supervisor (honcho, systemd, a terminal's Ctrl-C) signals a job's whole process group; a JVM in that
    group would stop at once, under the Python driver that is still stopping its queries between batches.
    In its own session only the driver is signalled; the JVM still dies with it (Spark's gateway exits when
    the driver's pipe to it closes).
    """
    if SparkContext._gateway is None:
        SparkContext._gateway = launch_gateway(conf, popen_kwargs={"start_new_session": True})
        SparkContext._jvm = SparkContext._gateway.jvm
