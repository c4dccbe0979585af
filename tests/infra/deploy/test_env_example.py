"""`.env.example` documents every variable docker-compose.yml reads and ships no secret."""

from __future__ import annotations

import re

from tests.infra.deploy.compose import COMPOSE_FILE, ENV_EXAMPLE, read_env_file, variables

SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|API_KEY", re.IGNORECASE)
URL_PASSWORD = re.compile(r"://[^:/@\s]+:(?P<password>[^@\s]+)@")


def test_every_compose_variable_is_in_env_example() -> None:
    documented = read_env_file(ENV_EXAMPLE)
    used = {var.name for var in variables(COMPOSE_FILE.read_text(encoding="utf-8"))}
    assert sorted(used - documented.keys()) == []
    assert sorted(documented.keys() - used) == [], "documented but unused"


def test_required_variables_are_blank_and_optional_ones_show_the_compose_default() -> None:
    documented = read_env_file(ENV_EXAMPLE)
    for var in variables(COMPOSE_FILE.read_text(encoding="utf-8")):
        if var.required:
            assert documented[var.name] == "", f"{var.name} must be blank in .env.example"
        else:
            assert var.default is not None, f"${{{var.name}}} needs a default or `:?` in docker-compose.yml"
            assert documented[var.name] == var.default, var.name


def test_secrets_are_required_variables_never_literals() -> None:
    """Every password/token in the compose file comes from `${NAME:?...}` (or is blank by default)."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    required = {var.name for var in variables(text) if var.required}
    secrets = {"POSTGRES_PASSWORD", "INFLUXDB_TOKEN", "INFLUXDB_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
    secrets |= {"API_KEYS", "METRICS_API_KEY"}
    assert secrets <= required
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and value.strip() and SECRET_NAME.search(key):  # no value: a block (e.g. `secrets:`)
            refs = variables(value)
            assert refs, f"literal secret in docker-compose.yml: {line.strip()!r}"
            assert all(var.required or var.default == "" for var in refs), line.strip()
    for match in URL_PASSWORD.finditer(text):
        refs = variables(match["password"])
        assert refs and all(var.required for var in refs), f"literal password in URL {match[0]!r}"
