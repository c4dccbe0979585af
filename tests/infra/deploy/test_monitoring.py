"""Prometheus and Grafana of the compose stack agree with the services, the settings and the code.

PromQL is checked by a real query engine (the local stack's VictoriaMetrics, whose MetricsQL accepts
PromQL), the dashboard's SQL by the real PostgreSQL schema (a freshly migrated database).
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import psycopg2
import yaml

from tests.conftest import REPO_ROOT
from tests.infra.deploy.compose import (
    GRAFANA_DIR,
    PROMETHEUS_FILE,
    port_setting,
    service_env,
    service_settings,
    tickflow_args,
)
from tickflow.settings import Settings

DASHBOARD_FILES = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
RULE_FILES = sorted((PROMETHEUS_FILE.parent / "rules").glob("*.yml"))
# What the pipeline-health dashboard must show (panel titles, case-insensitive substrings).
REQUIRED_PANELS = ["ingest rate", "consumer lag", "batch duration", "bar freshness", "api latency"]
# Modules defining the metrics of `tickflow produce`, `stream bars` and `stream indicators`.
METRIC_MODULES = ("producers.metrics", "streaming_jobs.bars.metrics", "streaming_jobs.indicators.metrics")
_METRIC = re.compile(r"\b(tickflow_[a-z0-9_]+)")
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}


def prometheus_config() -> dict[str, Any]:
    return yaml.safe_load(PROMETHEUS_FILE.read_text(encoding="utf-8"))


def scrape_targets() -> dict[str, tuple[str, str]]:
    """``{"host:port": (job, metrics_path)}`` of every static and DNS-discovered target."""
    found = {}
    for job in prometheus_config()["scrape_configs"]:
        path = job.get("metrics_path", "/metrics")
        for static in job.get("static_configs", []):
            found.update({target: (job["job_name"], path) for target in static["targets"]})
        for dns in job.get("dns_sd_configs", []):
            found.update({f"{name}:{dns['port']}": (job["job_name"], path) for name in dns["names"]})
    return found


def dashboards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in DASHBOARD_FILES]


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return [p for p in found if p["type"] != "row"]


def queries(datasource_type: str) -> list[tuple[str, str]]:
    """``(panel title, query)`` of every dashboard target of a data source type (``prometheus``/SQL)."""
    key = "expr" if datasource_type == "prometheus" else "rawSql"
    found = []
    for dashboard in dashboards():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                ds = target.get("datasource") or panel["datasource"]
                if ds["type"] == datasource_type:
                    found.append((panel["title"], target[key]))
    return found


def rule_expressions() -> list[tuple[str, str]]:
    return [
        (rule["alert"], rule["expr"])
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]


def container_to_repo(service: dict[str, Any], container_path: str) -> Path:
    """The repository path that a bind mount (``./x:/y``) of ``service`` shows at ``container_path``."""
    wanted = PurePosixPath(container_path)
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("./") and wanted.is_relative_to(target):
            return REPO_ROOT / source / wanted.relative_to(target)
    raise AssertionError(f"{container_path} is not bind-mounted from the repository")


def exported_metric_names() -> set[str]:
    """Sample names every Tickflow process exports (counters with ``_total``, histogram series ...)."""
    from prometheus_client import REGISTRY

    from api.metrics import ApiMetrics

    for module in METRIC_MODULES:  # each registers its metrics in the default REGISTRY on import
        importlib.import_module(module)

    names = set()
    for registry in (REGISTRY, ApiMetrics().registry):
        for family in registry.collect():
            names.add(family.name)
            names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
    return names


def test_prometheus_scrapes_every_tickflow_process(services: dict[str, dict[str, Any]]) -> None:
    targets = scrape_targets()
    scraped = set()
    for name, svc in services.items():
        args = tickflow_args(svc)
        field = port_setting(args) if args else None
        if field is None or field == "dashboard_port":
            continue
        port = getattr(service_settings(svc), field)
        assert f"{name}:{port}" in targets, f"{name} ({field}={port}) is not scraped"
        assert targets[f"{name}:{port}"][1] == "/metrics"
        scraped.add(name)
    assert {"producer", "bars", "indicators", "api"} <= scraped


def test_prometheus_scrapes_spark_and_exporters_on_their_ports(services: dict[str, dict[str, Any]]) -> None:
    targets = scrape_targets()
    for target in targets:
        host = target.split(":")[0]
        assert host == "localhost" or host in services, f"unknown scrape host {host}"
    for name, svc in services.items():
        command = svc.get("command") or []
        if "--webui-port" in command:
            port = command[command.index("--webui-port") + 1]
            assert f"{name}:{port}" in targets, f"Spark daemon {name} is not scraped"
        if command[:1] == ["spark-submit"]:  # the driver's UI (default port 4040) serves its metrics
            assert f"{name}:4040" in targets, f"Spark driver {name} is not scraped"
    exporters = [n for n in services if n.endswith("-exporter")]
    assert exporters and all(any(t.startswith(f"{n}:") for t in targets) for n in exporters)


def test_prometheus_loads_the_rule_files(services: dict[str, dict[str, Any]]) -> None:
    for pattern in prometheus_config()["rule_files"]:
        folder = container_to_repo(services["prometheus"], str(PurePosixPath(pattern).parent))
        assert sorted(folder.glob(PurePosixPath(pattern).name)) == RULE_FILES != []
    config_arg = next(a for a in services["prometheus"]["command"] if a.startswith("--config.file="))
    assert container_to_repo(services["prometheus"], config_arg.split("=", 1)[1]) == PROMETHEUS_FILE


def test_grafana_data_sources_point_at_the_stack(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    provisioning = container_to_repo(grafana, "/etc/grafana/provisioning")
    config = yaml.safe_load((provisioning / "datasources" / "tickflow.yml").read_text(encoding="utf-8"))
    sources = {ds["uid"]: ds for ds in config["datasources"]}
    for name in re.findall(r"\$\{?([A-Z_]+)", json.dumps(config)):
        assert name in service_env(grafana), f"${name} is not in the grafana service's environment"
    assert sources["influxdb"]["secureJsonData"]["token"] == "$INFLUXDB_TOKEN"
    assert set(sources) == {"prometheus", "timescaledb", "influxdb"}
    assert sources["prometheus"]["url"] == "http://prometheus:9090"
    settings = service_settings(services["api"])
    db = service_env(services["timescaledb"])
    assert sources["timescaledb"]["url"] == "timescaledb:5432"
    assert sources["timescaledb"]["user"] == db["POSTGRES_USER"]
    assert sources["timescaledb"]["jsonData"]["database"] == db["POSTGRES_DB"]
    assert sources["influxdb"]["url"] == settings.influx_url
    providers = yaml.safe_load((provisioning / "dashboards" / "tickflow.yml").read_text())["providers"]
    for provider in providers:
        folder = container_to_repo(grafana, provider["options"]["path"])
        assert sorted(folder.glob("*.json")) == DASHBOARD_FILES


def test_pipeline_health_dashboard_has_the_required_panels() -> None:
    assert DASHBOARD_FILES
    uids = {"prometheus", "timescaledb", "influxdb"}
    titles = []
    for dashboard in dashboards():
        assert dashboard["uid"] and dashboard["title"]
        for panel in panels(dashboard):
            titles.append(panel["title"].lower())
            assert panel["datasource"]["uid"] in uids, panel["title"]
            assert panel["targets"], f"panel {panel['title']!r} has no query"
    for required in REQUIRED_PANELS:
        assert any(required in title for title in titles), f"no {required!r} panel"


def test_dashboard_and_rules_use_metrics_the_code_exports() -> None:
    exported = exported_metric_names()
    used = {m for _, expr in queries("prometheus") + rule_expressions() for m in _METRIC.findall(expr)}
    assert used, "no Tickflow metric in the dashboards or rules"
    assert sorted(used - exported) == []


def test_promql_is_accepted_by_a_query_engine(stack: Settings) -> None:
    expressions = queries("prometheus") + rule_expressions()
    with httpx.Client(base_url=stack.influx_url, timeout=10) as client:
        for title, expr in expressions:
            response = client.get("/api/v1/query", params={"query": expr})
            assert response.status_code == 200, f"{title}: {expr}\n{response.text}"
    bad = httpx.get(f"{stack.influx_url}/api/v1/query", params={"query": "sum(rate(x[5m])"}, timeout=10)
    assert bad.status_code >= 400, "the engine must reject broken PromQL"


def test_dashboard_sql_runs_on_the_schema(fresh_db: Settings) -> None:
    """On the plain-PostgreSQL layout (no TimescaleDB here); the queries use no TimescaleDB function."""
    sql = queries("grafana-postgresql-datasource")
    assert sql, "no TimescaleDB panel"
    with psycopg2.connect(fresh_db.postgres_dsn) as conn, conn.cursor() as cur:
        for title, query in sql:
            cur.execute(query)
            assert cur.description, title
