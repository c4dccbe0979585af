"""`tickflow produce`: real processes against the real broker, shutdown by signal, argument errors."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from producers.cli import probe
from tests.producers.captures import BITSTAMP
from tests.producers.kafka_util import consume_all
from tickflow.cli import app
from tickflow.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
TICKFLOW = [sys.executable, "-m", "tickflow"]


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKFLOW_")}
    return {**env, **settings.to_env(), "TICKFLOW_PRODUCER_METRICS_PORT": "0"}


def _produced(output: str) -> int:
    match = re.search(r"produced=(\d+)", output)
    assert match, output
    return int(match.group(1))


def test_sigterm_flushes_everything(fresh_topics: Settings) -> None:
    process = subprocess.Popen(
        [*TICKFLOW, "produce", "synthetic", "--rate", "5000", "--symbols", "BTC-USD,ETH-USD"],
        env=_env(fresh_topics), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        consume_all(fresh_topics, fresh_topics.topic_ticks, 1, timeout_s=30)  # it is producing
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    produced = _produced(stdout)
    assert produced > 0
    assert len(consume_all(fresh_topics, fresh_topics.topic_ticks, produced)) == produced  # none lost


def test_replay_command(shared_data: Path, fresh_topics: Settings) -> None:
    result = subprocess.run(
        [*TICKFLOW, "produce", "replay", str(shared_data / BITSTAMP), "--speed", "max"],
        env=_env(fresh_topics), cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _produced(result.stdout) == 10
    assert "lines" in result.stderr  # the progress bar
    assert len(consume_all(fresh_topics, fresh_topics.topic_ticks, 10)) == 10


def test_argument_errors(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a\n")
    runner = CliRunner()
    result = runner.invoke(app, ["produce", "replay", str(path), "--speed", "fast"])
    assert result.exit_code == 2 and "--speed" in result.output
    result = runner.invoke(app, ["produce", "live", "--exchange", "nowhere", "--metrics-port", "0"])
    assert result.exit_code == 2 and "unknown exchange" in result.output


def test_probe() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert probe(f"ws://127.0.0.1:{port}") is None
    started = time.monotonic()
    problem = probe(f"wss://127.0.0.1:{port}/feed", timeout_s=2)
    assert problem is not None and str(port) in problem and time.monotonic() - started < 2.5
