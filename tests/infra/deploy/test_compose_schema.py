"""docker-compose.yml validates against the Compose Specification's JSON schema.

The schema is the copy vendored in check-jsonschema (`--builtin-schema vendor.compose-spec`, from
github.com/compose-spec/compose-spec, Apache-2.0; see check_jsonschema/builtin_schemas/vendor/licenses).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.infra.deploy.compose import COMPOSE_FILE


def check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_matches_the_compose_specification() -> None:
    result = check_compose_schema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_an_unknown_service_key(tmp_path: Path) -> None:
    """The check bites: a misspelt health-check key in a copy of the file is reported."""
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert "    healthcheck:\n      test:" in text
    broken.write_text(text.replace("    healthcheck:\n      test:", "    healthcheck:\n      tset:", 1))
    result = check_compose_schema(broken)
    assert result.returncode == 1
    assert "tset" in result.stdout
