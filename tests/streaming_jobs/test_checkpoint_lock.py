"""One process at a time runs a job on its checkpoints (``streaming_jobs.checkpoints.exclusive``): a second
`tickflow stream` of the same job stops at once with one line naming the holder; the lock ends with the
holder, even when it is SIGKILLed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streaming_jobs.checkpoints import CheckpointInUse, exclusive
from tests.conftest import REPO_ROOT
from tickflow.settings import Settings

HOLD = (
    "import sys, pathlib;"
    "from streaming_jobs.checkpoints import exclusive;"
    "from tickflow.settings import Settings;"
    "settings = Settings(_env_file=None, checkpoint_dir=pathlib.Path(sys.argv[1]));"
    "lock = exclusive(settings, sys.argv[2]); lock.__enter__(); print('held', flush=True); sys.stdin.read()"
)


def env(state_dir: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TICKFLOW_")}
    return base | {"TICKFLOW_STATE_DIR": str(state_dir), "TICKFLOW_CHECKPOINT_DIR": str(state_dir / "cp")}


@pytest.mark.parametrize("job", ["bars", "indicators"])
def test_a_second_job_on_the_same_checkpoints_stops_at_once_and_names_the_first(
    job: str, tmp_path: Path
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "cp"), job],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        second = subprocess.run(
            [sys.executable, "-m", "tickflow", "stream", job],
            cwd=REPO_ROOT,
            env=env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2, second.stderr
        assert f"tickflow stream {job}: the {job} job already runs" in second.stderr
        assert f"pid {holder.pid} on " in second.stderr and "stop it first" in second.stderr
        assert "Spark" not in second.stderr  # refused before a JVM was started

        settings = Settings(_env_file=None, checkpoint_dir=tmp_path / "cp")
        with pytest.raises(CheckpointInUse):
            exclusive(settings, job).__enter__()
    finally:
        holder.kill()  # SIGKILL: the kernel releases the lock
        holder.wait(30)
    with exclusive(settings, job) as lock:
        assert lock.read_text() == f"pid {os.getpid()} on {os.uname().nodename}\n"
    with exclusive(settings, job):  # released on exit
        pass
