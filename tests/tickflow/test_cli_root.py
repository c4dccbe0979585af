"""The `tickflow` root finds every stage's commands through the ``tickflow.commands`` entry points."""

from __future__ import annotations

import configparser
import subprocess
import sys

from typer.testing import CliRunner

from tests.conftest import REPO_ROOT
from tickflow.cli import COMMAND_GROUP, app


def registered() -> dict[str, str]:
    """``setup.cfg``'s ``tickflow.commands``: command name -> ``module:object``."""
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    lines = config["options.entry_points"][COMMAND_GROUP].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split("=")) for line in lines)  # type: ignore[misc]


def test_every_registered_command_is_on_the_root() -> None:
    commands = registered()
    assert {"produce", "stream", "alerts", "api", "dashboard", "ml", "run", "db"} <= set(commands)
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    missing = [name for name in commands if f" {name} " not in result.output]
    assert not missing, (
        f"registered in setup.cfg but not on `tickflow` (reinstall: pip install -e .): {missing}"
    )


def test_python_dash_m_tickflow_runs_a_stage_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tickflow", "alerts", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "--exit-when-idle" in result.stdout
