"""The import layering (``.importlinter``, run by ``make lint``): it holds on the tree, and a stage importing
another stage, ``tickflow`` importing a stage, or ``bench`` importing ``tests`` breaks it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
STAGES = "Stages import tickflow and themselves only"
CONTRACTS = "tickflow (the contracts) imports no stage"
BENCH = "bench imports no test code"
PACKAGES = (
    "tickflow",
    "producers",
    "streaming_jobs",
    "alerting",
    "api",
    "dashboard",
    "ml",
    "infra",
    "bench",
    "tests",
)


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with ``root``'s ``.importlinter``, importing the packages under ``root``."""
    return subprocess.run(
        [str(LINT_IMPORTS), str(root / ".importlinter"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """The Python files of every layered package and the ``.importlinter`` of the tree, copied."""
    for package in PACKAGES:
        for source in (REPO_ROOT / package).rglob("*.py"):
            target = tmp_path / source.relative_to(REPO_ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    shutil.copyfile(REPO_ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def test_the_tree_keeps_the_layering() -> None:
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract", "edge"),
    [
        (
            "producers/pipeline.py",
            "import streaming_jobs.source",
            STAGES,
            "producers.pipeline -> streaming_jobs.source",
        ),
        ("api/models.py", "from dashboard import frames", STAGES, "api.models -> dashboard.frames"),
        ("tickflow/keys.py", "import producers.cli", CONTRACTS, "tickflow.keys -> producers.cli"),
        (
            "bench/bench_producer.py",
            "from tests import reference_bars",
            BENCH,
            "bench.bench_producer -> tests.reference_bars",
        ),
    ],
)
def test_a_wrong_import_breaks_the_layering(
    tree_copy: Path, module: str, bad_import: str, contract: str, edge: str
) -> None:
    with (tree_copy / module).open("a") as source:
        source.write(f"\n{bad_import}  # deliberately wrong\n")
    result = lint_imports(tree_copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{contract} BROKEN" in result.stdout
    assert edge in result.stdout
