"""Read docker-compose.yml as `docker compose` would: ``${VAR}`` interpolation from an env file, YAML
anchors and merge keys resolved, and the Tickflow settings each service's process would see."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

from tests.conftest import REPO_ROOT
from tickflow.settings import Settings

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
DOCKERFILE = REPO_ROOT / "infra" / "docker" / "Dockerfile"
PROMETHEUS_FILE = REPO_ROOT / "infra" / "prometheus" / "prometheus.yml"
GRAFANA_DIR = REPO_ROOT / "infra" / "grafana"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; `$$` is a literal `$`.
_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
SPARK_APP = "/opt/tickflow/spark_app.py"
# Which setting holds the port a process listens on, by its `tickflow` command.
PORT_SETTING = {
    ("produce",): "producer_metrics_port",
    ("stream", "bars"): "bars_metrics_port",
    ("stream", "indicators"): "indicators_metrics_port",
    ("api",): "api_port",
    ("dashboard",): "dashboard_port",
}


@dataclass(frozen=True)
class Variable:
    """One ``${...}`` reference in the compose file."""

    name: str
    required: bool  # `:?` / `?`: compose refuses to start without it
    default: str | None


def variables(text: str) -> list[Variable]:
    """Every ``${...}`` reference in ``text``, in order."""
    found = []
    for match in _VARIABLE.finditer(text):
        if match["name"] is None:
            continue
        op = match["op"] or ""
        default = match["arg"] if op.endswith("-") else None
        found.append(Variable(match["name"], op.endswith("?"), default))
    return found


def interpolate(text: str, env: dict[str, str]) -> str:
    """``text`` with every reference replaced as compose does.

    Raises:
        KeyError: a required variable (``:?``) is unset or empty in ``env``.
    """

    def replace(match: re.Match[str]) -> str:
        if match["name"] is None:
            return "$"
        name, op, arg = match["name"], match["op"] or "", match["arg"] or ""
        value = env.get(name)
        empty = value is None or (op.startswith(":") and value == "")
        if op.endswith("?") and empty:
            raise KeyError(f"required variable {name} is not set: {arg}")
        if op.endswith("-") and empty:
            return arg
        return value or ""

    return _VARIABLE.sub(replace, text)


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of a dotenv file (comments and blank lines skipped)."""
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def load_compose(env: dict[str, str]) -> dict[str, Any]:
    """docker-compose.yml parsed (anchors and ``<<`` merges resolved), then its string values
    interpolated with ``env``: the order `docker compose` uses."""
    return _interpolate_values(yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8")), env)


def _interpolate_values(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: _interpolate_values(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate_values(item, env) for item in node]
    return node


def service_env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as the strings the container receives."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {name: _env_string(value) for name, value in raw.items()}


def _env_string(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def service_settings(service: dict[str, Any]) -> Settings:
    """The ``Settings`` a Tickflow process in ``service`` reads (its environment only, no .env file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKFLOW_")}
    env.update(service_env(service))
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings(_env_file=None)


def tickflow_args(service: dict[str, Any]) -> list[str] | None:
    """The ``tickflow`` arguments a service runs, directly or through spark-submit; None for others."""
    command = service.get("command") or []
    if command[:1] == ["tickflow"]:
        return command[1:]
    if command[:1] == ["spark-submit"] and SPARK_APP in command:
        return command[command.index(SPARK_APP) + 1 :]
    return None


def spark_submit_options(command: list[str]) -> dict[str, list[str]]:
    """``{--option: [values...]}`` of a spark-submit command line up to the application file."""
    options: dict[str, list[str]] = {}
    args = command[1 : command.index(SPARK_APP)]
    for flag, value in zip(args[::2], args[1::2], strict=True):
        assert flag.startswith("--"), f"unexpected spark-submit argument {flag!r}"
        options.setdefault(flag, []).append(value)
    return options


def spark_confs(command: list[str]) -> dict[str, str]:
    """The ``--conf key=value`` pairs of a spark-submit command line."""
    return dict(item.split("=", 1) for item in spark_submit_options(command).get("--conf", []))


def upstream(services: dict[str, dict[str, Any]], name: str) -> set[str]:
    """Every service ``name`` waits for (``depends_on``), directly or indirectly."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        for dep in services[todo.pop()].get("depends_on", {}):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def tickflow_services(services: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """``{service: tickflow arguments}`` of the services that run the tickflow command."""
    found = {name: tickflow_args(svc) for name, svc in services.items()}
    return {name: args for name, args in found.items() if args is not None}


def port_setting(args: list[str]) -> str | None:
    """The ``Settings`` field of the port the process of ``tickflow <args>`` listens on, if any."""
    for prefix, field in PORT_SETTING.items():
        if tuple(args[: len(prefix)]) == prefix:
            return field
    return None
