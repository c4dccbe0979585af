"""An API process whose PostgreSQL and Redis are unreachable stays up, says so, and answers 503 (never
500) where it needs them, while the Kafka fast path keeps pushing ticks."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from infra.local.sandbox import free_port
from infra.local.servers import ApiServer
from tests.api.conftest import API_KEY
from tests.api.seed import SYMBOL, Seeded, ticks_of
from tests.api.wsclient import TickProducer, open_ws, receive, receive_until, request, subscribe, trade_ids
from tickflow.settings import Settings


@pytest.fixture(scope="module")
def degraded(api_settings: Settings) -> Iterator[ApiServer]:
    settings = api_settings.model_copy(
        update={
            "postgres_dsn": f"postgresql://postgres@127.0.0.1:{free_port()}/tickflow",
            "redis_url": f"redis://127.0.0.1:{free_port()}/0",
            "influx_url": f"http://127.0.0.1:{free_port()}",
        }
    )
    server = ApiServer(settings, settings.state_dir / "api-degraded.log").start()
    yield server
    server.stop()


def test_ready_reports_what_is_down_and_live_stays_up(degraded: ApiServer) -> None:
    ready = httpx.get(f"{degraded.url}/ready", timeout=10)
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert {name: check["ok"] for name, check in checks.items()} == {
        "postgres": False,
        "redis": False,
        "kafka": True,
        "influx": False,
    }
    assert all(checks[name]["detail"].startswith("unavailable (") for name in ("postgres", "redis", "influx"))
    assert httpx.get(f"{degraded.url}/live").status_code == 200
    assert httpx.get(f"{degraded.url}/health").json()["pubsub_connected"] is False


@pytest.mark.parametrize(
    "path", [f"/api/v1/latest/{SYMBOL}", f"/api/v1/ticks/{SYMBOL}", "/api/v1/latest/XBT-USD"]
)
def test_reads_needing_the_database_are_503(degraded: ApiServer, path: str) -> None:
    started = time.monotonic()
    response = httpx.get(f"{degraded.url}{path}", headers={"X-API-Key": API_KEY}, timeout=15)
    assert response.status_code == 503, response.text
    assert response.json()["detail"].startswith("database unavailable")
    assert time.monotonic() - started < 10


def test_ticks_still_reach_websocket_clients(degraded: ApiServer, seeded: Seeded) -> None:
    trades = seeded.trades.iloc[2000:2100]
    with open_ws(degraded) as ws:
        receive(ws)
        subscribe(ws, [SYMBOL], ["trades"])
        unavailable = request(ws, {"type": "subscribe", "symbols": ["XBT-USD"], "channels": ["trades"]})
        assert unavailable["code"] == "UNAVAILABLE"
        producer = TickProducer(degraded.settings)
        producer.send(ticks_of(trades, int(time.time() * 1e6)))
        producer.flush()
        got = receive_until(ws, lambda m: trades.trade_id.iloc[-1] in trade_ids([m]))
        assert trade_ids(got) == list(trades.trade_id)
