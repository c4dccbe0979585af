"""JVM artifacts from Maven Central: the pinned POMs under ``infra/maven/<name>/pom.xml`` resolved by ``mvn``.

Two artifact sets are used: ``kafka-broker`` (Apache Kafka for the local stack, run in its own JVM) and
``spark-kafka`` (Spark's Kafka connector, put on ``spark.jars`` of the streaming jobs). Maven downloads the
jars once into its local repository (``~/.m2/repository``); the resolved classpath is cached beside it in
``~/.m2/tickflow/<name>-<pom digest>.classpath``, so a second run neither downloads nor even starts ``mvn``.
A changed POM has a new digest and is resolved again.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Final, Literal

ArtifactSet = Literal["kafka-broker", "spark-kafka"]

MAVEN_DIR: Final = Path(__file__).resolve().parent.parent / "infra" / "maven"
"""Where the pinned POMs live (one folder per artifact set)."""

RESOLVE_TIMEOUT_S: Final = 600


class ClasspathError(RuntimeError):
    """The jars of an artifact set cannot be had; the message says what is missing and how to provide it."""


def pom_path(name: ArtifactSet) -> Path:
    """The POM of artifact set ``name``."""
    return MAVEN_DIR / name / "pom.xml"


def pom_property(name: ArtifactSet, prop: str) -> str:
    """The value of ``<prop>`` in the ``<properties>`` of ``name``'s POM (e.g. ``kafka.version``).

    Raises:
        KeyError: the POM has no such property.
    """
    match = re.search(rf"<{re.escape(prop)}>([^<]+)</{re.escape(prop)}>", pom_path(name).read_text())
    if match is None:
        raise KeyError(f"{pom_path(name)} has no property {prop}")
    return match.group(1).strip()


def cache_dir() -> Path:
    """Folder of the cached classpath files, beside Maven's local repository: ``~/.m2/tickflow``."""
    return Path.home() / ".m2" / "tickflow"


def classpath(name: ArtifactSet) -> list[Path]:
    """The jar files of artifact set ``name``, resolving them with Maven when not cached yet (one resolution
    at a time in this process: services of the local stack start from several threads).

    Returns:
        Absolute paths of the jars (all existing), in Maven's order.

    Raises:
        ClasspathError: ``mvn`` is missing, or Maven could not resolve the POM (no route to Maven Central
            and the jars not in ``~/.m2``); the one-line message names the artifacts and the fix.
    """
    with _RESOLVING:
        return _classpath(name)


_RESOLVING: Final = threading.Lock()


def _classpath(name: ArtifactSet) -> list[Path]:
    pom = pom_path(name)
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    cached = cache_dir() / f"{name}-{digest}.classpath"
    jars = _read_classpath(cached)
    if jars is not None:
        return jars
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ClasspathError(
            f"Maven (`mvn`) is needed to fetch the jars of {pom}; install it: apt-get install -y maven"
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial")
    argv = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(pom),
        "dependency:build-classpath",
        "-DincludeScope=runtime",
        f"-Dmdep.outputFile={partial}",
    ]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ClasspathError(f"`mvn` took over {RESOLVE_TIMEOUT_S} s resolving {pom}; {_HOW}") from exc
    if result.returncode != 0:
        reason = _maven_error(result.stdout + result.stderr)
        raise ClasspathError(f"cannot resolve the jars of {pom} ({reason}); {_HOW}")
    partial.replace(cached)
    jars = _read_classpath(cached)
    if jars is None:
        raise ClasspathError(f"`mvn` resolved {pom} but the jars it listed are missing; {_HOW}")
    return jars


def check_spark_pin(pyspark_version: str) -> None:
    """Check that the connector POM is pinned to the installed pyspark (Spark's Kafka connector must match
    the Spark version exactly).

    Raises:
        ClasspathError: the versions differ (the message names both and the file to change).
    """
    pinned = pom_property("spark-kafka", "spark.version")
    if pinned != pyspark_version:
        raise ClasspathError(
            f"pyspark {pyspark_version} is installed but {pom_path('spark-kafka')} pins the Kafka connector "
            f"to Spark {pinned}; pin both to one version whose connector Maven Central serves (setup.cfg)"
        )


_HOW: Final = (
    "provide them by running `mvn -f <that pom> dependency:go-offline` on a machine that reaches Maven "
    "Central and copying its ~/.m2/repository to this machine"
)


def _read_classpath(path: Path) -> list[Path] | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    jars = [Path(entry) for entry in text.split(os.pathsep) if entry]
    return jars if jars and all(jar.is_file() for jar in jars) else None


def _maven_error(output: str) -> str:
    """The first ``[ERROR]`` line of Maven's output, shortened (Maven prints pages of hints after it)."""
    for line in output.splitlines():
        if "[ERROR]" in line:
            return re.sub(r"\x1b\[[0-9;]*m", "", line).replace("[ERROR]", "").strip()[:300]
    return output.strip()[-300:] or "no output"
