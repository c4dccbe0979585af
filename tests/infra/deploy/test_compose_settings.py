"""Every service's command, environment and ports agree with the settings the code reads."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import REPO_ROOT
from tests.infra.deploy.compose import (
    PORT_SETTING,
    port_setting,
    service_env,
    service_settings,
    tickflow_args,
    tickflow_services,
    upstream,
)
from tests.infra.deploy.conftest import SECRET_STAND_IN
from tickflow.cli import app
from tickflow.settings import LOOPBACK_HOSTS, Settings, service_address

# Commands the stack must run (each by at least one service).
REQUIRED_COMMANDS = [
    ("db", "migrate"),
    ("topics", "create"),
    ("produce",),
    ("stream", "bars"),
    ("stream", "indicators"),
    ("alerts",),
    ("api",),
    ("dashboard",),
    ("ml", "serve"),
]


def test_every_tickflow_variable_is_a_settings_field(services: dict[str, dict[str, Any]]) -> None:
    fields = {f"TICKFLOW_{name.upper()}" for name in Settings.model_fields}
    used = {var for svc in services.values() for var in service_env(svc) if var.startswith("TICKFLOW_")}
    assert used, "no TICKFLOW_* variable in docker-compose.yml"
    assert sorted(used - fields) == []


def test_every_tickflow_command_resolves_in_the_cli(services: dict[str, dict[str, Any]]) -> None:
    runs = tickflow_services(services)
    for required in REQUIRED_COMMANDS:
        assert any(tuple(args[: len(required)]) == required for args in runs.values()), required
    runner = CliRunner()
    for name, args in runs.items():
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, f"{name}: `tickflow {' '.join(args)}` -> {result.output}"


def test_settings_point_at_the_compose_services(services: dict[str, dict[str, Any]]) -> None:
    brokers = {
        listener.split("://", 1)[1]
        for svc in services.values()
        for listener in service_env(svc).get("KAFKA_ADVERTISED_LISTENERS", "").split(",")
        if listener.startswith("PLAINTEXT://")
    }
    db = service_env(services["timescaledb"])
    influx = service_env(services["influxdb"])
    for name in tickflow_services(services):
        settings = service_settings(services[name])
        assert settings.managed_services == [], name
        servers = {s.strip() for s in settings.kafka_bootstrap_servers.split(",")}
        assert servers == brokers, name
        assert service_address(settings, "postgres") == ("timescaledb", 5432), name
        dsn = urlsplit(settings.postgres_dsn)
        assert (dsn.username, dsn.password, dsn.path) == (
            db["POSTGRES_USER"],
            db["POSTGRES_PASSWORD"],
            "/" + db["POSTGRES_DB"],
        ), name
        assert service_address(settings, "redis") == ("redis", 6379), name
        assert service_address(settings, "influx") == ("influxdb", 8086), name
        assert settings.influx_org == influx["DOCKER_INFLUXDB_INIT_ORG"], name
        assert settings.influx_bucket == influx["DOCKER_INFLUXDB_INIT_BUCKET"], name
        assert settings.influx_token.get_secret_value() == influx["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"], name
        for service in ("kafka", "postgres", "redis", "influx"):
            assert not settings.is_managed(service)
            assert service_address(settings, service)[0] not in LOOPBACK_HOSTS


def test_ports_agree_with_settings(services: dict[str, dict[str, Any]]) -> None:
    runs = tickflow_services(services)
    api_ports = {service_settings(services[n]).api_port for n, args in runs.items() if args == ["api"]}
    assert len(api_ports) == 1
    (api_port,) = api_ports
    checked = set()
    for name, args in runs.items():
        settings = service_settings(services[name])
        assert settings.api_url == f"http://api:{api_port}", name
        field = port_setting(args)
        if field is None:
            continue
        port = getattr(settings, field)
        checked.add(field)
        probe = services[name]["healthcheck"]["test"][-1]
        assert urlsplit(probe).port == port, f"{name}: health check {probe} vs {field}={port}"
        for published in services[name].get("ports", []):
            assert published.rsplit(":", 1)[1] == str(port), f"{name}: publishes {published}"
        if field in ("api_port", "dashboard_port"):
            host = settings.api_host if field == "api_port" else settings.dashboard_host
            assert host == "0.0.0.0", f"{name} binds {host}: unreachable from other containers"
    assert checked == set(PORT_SETTING.values())


def test_dashboard_health_panel_reads_every_metrics_endpoint(services: dict[str, dict[str, Any]]) -> None:
    expected = set()
    for name, args in tickflow_services(services).items():
        field = port_setting(args)
        if field is not None and field != "dashboard_port":
            expected.add(f"http://{name}:{getattr(service_settings(services[name]), field)}/metrics")
    (dashboard,) = [n for n, args in tickflow_services(services).items() if args == ["dashboard"]]
    assert set(service_settings(services[dashboard]).dashboard_metrics_urls) == expected


@pytest.mark.parametrize(
    ("dependency", "setup_command", "needs"),
    [
        (
            "topics",
            ["topics", "create"],
            [("produce",), ("stream", "bars"), ("stream", "indicators"), ("alerts",)],
        ),
        ("migrate", ["db", "migrate"], [("stream", "bars"), ("alerts",), ("api",), ("ml", "serve")]),
    ],
)
def test_pipeline_services_wait_for_setup(
    services: dict[str, dict[str, Any]],
    dependency: str,
    setup_command: list[str],
    needs: list[tuple[str, ...]],
) -> None:
    """Producers and jobs start after the topics exist; what reads the database after `migrate`."""
    assert tickflow_args(services[dependency]) == setup_command
    for name, args in tickflow_services(services).items():
        if any(tuple(args[: len(p)]) == p for p in needs):
            assert dependency in upstream(services, name), f"{name} does not wait for {dependency}"


def test_dependency_conditions_are_satisfiable(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown {dep}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has no health check"
            elif condition == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is one-shot: restart must be 'no'"
            else:
                pytest.fail(f"{name} -> {dep}: condition {condition!r}")
        assert name not in upstream(services, name), f"{name} depends on itself"


def test_stores_keep_their_data_in_named_volumes(compose: dict[str, Any]) -> None:
    services, declared = compose["services"], set(compose["volumes"])
    data_paths = {
        "kafka-1": "/var/lib/kafka/data",
        "kafka-2": "/var/lib/kafka/data",
        "kafka-3": "/var/lib/kafka/data",
        "timescaledb": "/var/lib/postgresql/data",
        "influxdb": "/var/lib/influxdb2",
        "redis": "/data",
        "prometheus": "/prometheus",
        "grafana": "/var/lib/grafana",
    }
    for name, path in data_paths.items():
        mounts = dict(reversed(v.split(":")[:2]) for v in services[name]["volumes"])
        assert mounts.get(path) in declared, f"{name}: {path} is not a named volume"


def test_auth_is_on_and_metrics_servers_listen_for_prometheus(compose: dict[str, Any]) -> None:
    """Compose turns API auth on with the required keys, the metrics servers listen on the network (only
    Prometheus and the dashboard read them), and Prometheus scrapes the API's /metrics with its key."""
    services = compose["services"]
    for name in tickflow_services(services):
        settings = service_settings(services[name])
        assert settings.api_auth, name
        assert [key.get_secret_value() for key in settings.api_keys] == [SECRET_STAND_IN] * 2, name
        assert settings.metrics_bind_host == "0.0.0.0", name
    assert compose["secrets"]["metrics_api_key"] == {"environment": "METRICS_API_KEY"}
    assert "metrics_api_key" in services["prometheus"]["secrets"]
    scrape = yaml.safe_load((REPO_ROOT / "infra/prometheus/prometheus.yml").read_text(encoding="utf-8"))
    api_job = next(job for job in scrape["scrape_configs"] if job["job_name"] == "tickflow-api")
    assert api_job["authorization"] == {"type": "Bearer", "credentials_file": "/run/secrets/metrics_api_key"}
