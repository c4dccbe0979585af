"""``GET /api/v1/sources`` of a real API process, over quality records a producer's publisher wrote to the
real Redis."""

from __future__ import annotations

import asyncio

import httpx
from redis.asyncio import Redis

from infra.local.servers import ApiServer
from producers.quality import QualityPublisher, QualityTracker
from tests.api.conftest import API_KEY
from tickflow.settings import Settings

EVENT = 1_700_000_000_000_000


def _publish(settings: Settings) -> list:
    tracker = QualityTracker(settings)
    trade = {"exchange": "okx", "symbol": "SRC-USDT", "event_time": EVENT}
    tracker.accepted([trade] * 9, EVENT + 50_000, live=True)
    tracker.dead_letter("okx", "SRC-USDT", normalised=True)
    tracker.accepted([{**trade, "exchange": "kraken"}] * 3, EVENT + 10_000, live=True)

    async def publish() -> list:
        redis = Redis.from_url(settings.redis_url)
        try:
            return await QualityPublisher(settings, tracker).publish_once(redis)
        finally:
            await redis.aclose()

    return asyncio.run(publish())


def test_sources_lists_published_quality(api_server: ApiServer, api_settings: Settings) -> None:
    published = {(r.exchange, r.symbol): r for r in _publish(api_settings)}
    with httpx.Client(base_url=api_server.url, headers={"X-API-Key": API_KEY}, timeout=10) as client:
        response = client.get("/api/v1/sources", params={"symbol": "SRC-USDT"})
        assert response.status_code == 200, response.text
        sources = response.json()["sources"]
        assert [(s["exchange"], s["symbol"]) for s in sources] == [
            ("kraken", "SRC-USDT"),
            ("okx", "SRC-USDT"),
        ]
        okx = sources[1]
        assert okx == published[("okx", "SRC-USDT")].model_dump()
        assert (okx["accepted"], okx["dead_letters"], okx["dead_letter_rate"]) == (9, 1, 0.1)
        assert sources[0]["score"] > okx["score"]  # best first: kraken has no dead letters
        only = client.get("/api/v1/sources", params={"exchange": "kraken", "symbol": "SRC-USDT"}).json()
        assert [s["exchange"] for s in only["sources"]] == ["kraken"]
        assert httpx.get(f"{api_server.url}/api/v1/sources").status_code == 401
