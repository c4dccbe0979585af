"""``GET /api/v1/ml/status`` serves the prediction service's Redis status key."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest
import redis

from infra.local.servers import ApiServer
from tests.api.conftest import API_KEY
from tickflow.keys import ML_STATUS_KEY
from tickflow.settings import Settings


@pytest.fixture
def client(api_server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server.url, headers={"X-API-Key": API_KEY}, timeout=10) as http:
        yield http


def test_ml_status(client: httpx.Client, api_settings: Settings) -> None:
    store = redis.Redis.from_url(api_settings.redis_url)
    try:
        store.delete(ML_STATUS_KEY)
        assert client.get("/api/v1/ml/status").json() == {"running": False, "updated_at": None, "series": []}
        status = {
            "updated_at": "2026-01-05T12:00:00+00:00",
            "series": [
                {"symbol": "BTC-USD", "interval": "1m", "state": "waiting", "missing_bars": 11},
                {"symbol": "ETH-USD", "interval": "1m", "state": "predicting", "model_version": "v1"},
            ],
        }
        store.set(ML_STATUS_KEY, orjson.dumps(status))
        body = client.get("/api/v1/ml/status").json()
        assert body["running"] is True
        assert [(s["symbol"], s["state"], s["missing_bars"], s["model_version"]) for s in body["series"]] == [
            ("BTC-USD", "waiting", 11, None),
            ("ETH-USD", "predicting", None, "v1"),
        ]
        assert httpx.get(f"{client.base_url}/api/v1/ml/status").status_code == 401  # auth as everywhere
    finally:
        store.delete(ML_STATUS_KEY)
        store.close()
