"""Fixtures of the dashboard tests: a seeded database, a real API process (auth on), a real dashboard
process (``tickflow dashboard``) and a real headless Chromium driven by selenium."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from infra.local.sandbox import free_port
from infra.local.servers import ApiServer, DashboardServer
from tests.conftest import isolated_settings
from tests.dashboard.seed import Seeded, seed
from tickflow.settings import Settings

REDIS_DB = 7  # a Redis database of the dashboard tests (flushed when seeding)
API_KEY = f"dash-{uuid.uuid4().hex}"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.fixture(scope="package")
def dash_settings(stack: Settings) -> Iterator[Settings]:
    """A fresh migrated database, fresh topics, Redis db 7, API auth on, a 1 s refresh, and as metrics
    endpoints the API's plus one where nothing listens (the health panel must say so)."""
    with isolated_settings(
        stack,
        "dash",
        REDIS_DB,
        kafka_partitions=2,
        api_auth=True,
        api_keys=[API_KEY],
        dashboard_refresh_s=1.0,
    ) as settings:
        yield settings


@pytest.fixture(scope="package")
def seeded(dash_settings: Settings, shared_data: Path) -> Seeded:
    return seed(dash_settings, shared_data)


@pytest.fixture(scope="package")
def api_server(dash_settings: Settings, seeded: Seeded) -> Iterator[ApiServer]:
    server = ApiServer(dash_settings, dash_settings.state_dir / f"dash-api-{uuid.uuid4().hex[:6]}.log")
    yield server.start()
    server.stop()


@pytest.fixture(scope="package")
def app_settings(api_server: ApiServer) -> Settings:
    """The dashboard's settings: the running API, its ``/metrics`` and a metrics port nobody serves."""
    nobody = f"http://127.0.0.1:{free_port()}/metrics"
    return api_server.settings.model_copy(
        update={"dashboard_metrics_urls": [f"{api_server.url}/metrics", nobody], "api_url": api_server.url}
    )


@pytest.fixture(scope="package")
def dashboard_server(app_settings: Settings) -> Iterator[DashboardServer]:
    server = DashboardServer(app_settings, app_settings.state_dir / f"dashboard-{uuid.uuid4().hex[:6]}.log")
    yield server.start()
    server.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[webdriver.Chrome]:
    """Debian's headless Chromium through Debian's chromedriver (nothing downloaded), console logs on."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian chromium and chromium-driver are not installed")
    profile = tempfile.mkdtemp(prefix="tickflow-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1600,1280",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``artifacts/`` at the repository root (gitignored): screenshots of the browser tests."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
