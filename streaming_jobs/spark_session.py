"""The SparkSession of Tickflow's streaming jobs, configured for a small machine (2 cores) by default.

The session carries Spark's Kafka connector: the four jars of ``infra/maven/spark-kafka/pom.xml``
(resolved once by Maven, see ``tickflow.jvm``) go on ``spark.jars``, which also ships them to executors.
Local mode (``spark_master`` ``local[...]``): the session is created here with the settings' master and
driver memory, and ``PYSPARK_PYTHON`` points at this interpreter so that Python workers find Tickflow's
packages. Under ``spark-submit`` (a cluster) the master, memory, Python and jars come from spark-submit and
are left alone; only the SQL settings below are applied.
"""

from __future__ import annotations

import os
import sys

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
    builder = SparkSession.builder.appName(app_name)
    if not launched_by_spark_submit():
        os.environ["PYSPARK_PYTHON"] = sys.executable
        builder = builder.master(settings.spark_master).config(
            "spark.driver.memory", settings.spark_driver_memory
        )
        if settings.spark_java_options:
            builder = builder.config("spark.driver.extraJavaOptions", settings.spark_java_options)
        builder = builder.config("spark.ui.enabled", str(settings.spark_ui_enabled).lower()).config(
            "spark.jars", ",".join(str(jar) for jar in jvm.classpath("spark-kafka"))
        )
    spark = (
        builder.config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.scheduler.mode", "FAIR")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    return spark
