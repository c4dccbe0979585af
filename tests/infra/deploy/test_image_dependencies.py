"""The image installs the tickflow wheel with the dependencies of setup.cfg only: every third-party module
the shipped packages import must come from a distribution those requirements pull in."""

from __future__ import annotations

import ast
import configparser
import sys
from importlib import metadata

from packaging.requirements import Requirement

from tests.conftest import REPO_ROOT

SHIPPED = ("tickflow", "producers", "streaming_jobs", "api", "dashboard", "ml", "infra")


def imported_modules() -> dict[str, str]:
    """``{top-level module: first file importing it}`` over the shipped packages (absolute imports)."""
    found: dict[str, str] = {}
    for package in SHIPPED:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(REPO_ROOT)))
    return found


def install_requires() -> list[Requirement]:
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    lines = config["options"]["install_requires"].strip().splitlines()
    return [Requirement(line) for line in lines if line.strip()]


def requirement_closure(requirements: list[Requirement]) -> set[str]:
    """Normalised names of the distributions ``requirements`` install (with their requested extras)."""
    seen: set[str] = set()
    todo = [(req, frozenset(req.extras)) for req in requirements]
    while todo:
        req, extras = todo.pop()
        name = metadata.distribution(req.name).metadata["Name"].lower().replace("_", "-")
        if name in seen and not extras:
            continue
        seen.add(name)
        for text in metadata.requires(req.name) or []:
            child = Requirement(text)
            env = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if child.marker is None or any(child.marker.evaluate(e) for e in env):
                todo.append((child, frozenset(child.extras)))
    return seen


def test_every_imported_module_is_installed_by_setup_cfg() -> None:
    provided = requirement_closure(install_requires())
    owners = metadata.packages_distributions()
    missing = {}
    for module, where in imported_modules().items():
        if module in sys.stdlib_module_names or module in SHIPPED:
            continue
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [])}
        if not dists & provided:
            missing[module] = where
    assert missing == {}, f"imported but not required by setup.cfg (absent from the image): {missing}"
