"""Fixtures of the deployment tests: docker-compose.yml as compose would read it with `.env.example`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.deploy.compose import COMPOSE_FILE, ENV_EXAMPLE, load_compose, read_env_file, variables

# Stand-ins for the secrets `.env.example` leaves blank (compose refuses to start without them).
SECRET_STAND_IN = "not-a-real-secret"


@pytest.fixture(scope="session")
def example_env() -> dict[str, str]:
    """`.env.example` with its blank required secrets filled by a stand-in."""
    env = read_env_file(ENV_EXAMPLE)
    for var in variables(COMPOSE_FILE.read_text(encoding="utf-8")):
        if var.required and not env.get(var.name):
            env[var.name] = SECRET_STAND_IN
    return env


@pytest.fixture(scope="session")
def compose(example_env: dict[str, str]) -> dict[str, Any]:
    """docker-compose.yml, interpolated with `.env.example` and parsed."""
    return load_compose(example_env)


@pytest.fixture(scope="session")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]
