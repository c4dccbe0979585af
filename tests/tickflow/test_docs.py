"""The README documents every setting (its table is `tickflow settings --markdown`)."""

from __future__ import annotations

from typer.testing import CliRunner

from tests.conftest import REPO_ROOT
from tickflow.cli import app


def test_readme_settings_table_is_current() -> None:
    result = CliRunner().invoke(app, ["settings", "--markdown"], env={"TICKFLOW_STATE_DIR": ".tickflow"})
    assert result.exit_code == 0, result.output
    readme = (REPO_ROOT / "README.md").read_text()
    missing = [line for line in result.output.splitlines() if line not in readme]
    assert not missing, "README settings table is stale; regenerate with `tickflow settings --markdown`"


def test_readme_starts_with_the_two_commands() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    blocks = readme.split("```")
    assert "make run" in blocks[1] and "make test" in blocks[3]
