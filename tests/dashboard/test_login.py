"""With ``api_auth`` on, the real dashboard process asks for a login (HTTP Basic, an API key as password)
on every page, asset and callback route; its liveness probe stays open."""

from __future__ import annotations

import httpx
import pytest

from infra.local.servers import DashboardServer
from tests.dashboard.conftest import API_KEY

ROUTES = ("/", "/_dash-layout", "/_dash-dependencies")


@pytest.mark.parametrize("path", ROUTES)
def test_dashboard_refuses_requests_without_a_login(dashboard_server: DashboardServer, path: str) -> None:
    url = f"{dashboard_server.url}{path}"
    refused = httpx.get(url, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].lower().startswith("basic")
    assert httpx.get(url, auth=("anyone", "wrong"), timeout=10).status_code == 401
    assert httpx.get(url, auth=("anyone", API_KEY), timeout=10).status_code == 200


def test_dashboard_callbacks_need_the_login(dashboard_server: DashboardServer) -> None:
    body = {"output": "chart.figure", "outputs": {"id": "chart", "property": "figure"}, "inputs": []}
    response = httpx.post(f"{dashboard_server.url}/_dash-update-component", json=body, timeout=10)
    assert response.status_code == 401


def test_liveness_probe_is_open(dashboard_server: DashboardServer) -> None:
    response = httpx.get(f"{dashboard_server.url}/live", timeout=10)
    assert response.status_code == 200 and response.text == "ok"
