"""The dashboard's only data source: the Tickflow REST API (plus the services' Prometheus endpoints).

Every method returns a :class:`~dashboard.http_cache.Fetched` whose ``data`` is already parsed (a
DataFrame for market data), cached for ``dashboard_cache_ttl_s`` and served stale while the API is down.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd

from dashboard.frames import anomalies_frame, bars_frame, indicators_frame, predictions_frame
from dashboard.http_cache import Fetched, HttpCache, text_body
from tickflow.apikeys import API_KEY_HEADER
from tickflow.settings import Settings, reveal

MAX_PAGE = 10_000
"""Largest page the API serves (``limit`` of the list endpoints)."""

SYMBOLS_TTL_S = 30.0


def _items(to_frame: Callable[[list[dict[str, Any]]], pd.DataFrame]) -> Callable[[httpx.Response], Any]:
    return lambda response: to_frame(response.json()["items"])


class TickflowApi:
    """Reads of the REST API at ``Settings.api_url`` with the dashboard's API key."""

    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.api_url.rstrip("/")
        first = reveal(settings.api_keys[0]) if settings.api_keys else ""
        key = reveal(settings.dashboard_api_key) or first
        self.http = HttpCache(
            timeout_s=settings.dashboard_api_timeout_s,
            ttl_s=settings.dashboard_cache_ttl_s,
            retry_s=settings.dashboard_refresh_s,
            headers={API_KEY_HEADER: key} if key else None,
        )

    def _url(self, path: str, symbol: str | None = None) -> str:
        return f"{self.base_url}{path}" + (f"/{quote(symbol, safe='')}" if symbol else "")

    def symbols(self) -> Fetched:
        """``list[str]`` of served symbols (listed first), cached for 30 s."""
        return self.http.get(
            self._url("/api/v1/symbols"),
            parse=lambda r: [s["symbol"] for s in r.json()["symbols"]],
            ttl_s=SYMBOLS_TTL_S,
        )

    def bars(self, symbol: str, interval: str, limit: int) -> Fetched:
        """The newest ``limit`` bars (at most 10,000) as a ``bars_frame``, oldest first."""
        params = {"interval": interval, "order": "desc", "limit": min(limit, MAX_PAGE)}
        return self.http.get(self._url("/api/v1/bars", symbol), params, _items(bars_frame))

    def indicators(self, symbol: str, interval: str, start: datetime) -> Fetched:
        """Indicator rows of bars starting at or after ``start`` (UTC) as an ``indicators_frame``."""
        params = {"interval": interval, "start": start.isoformat(), "limit": MAX_PAGE}
        return self.http.get(self._url("/api/v1/indicators", symbol), params, _items(indicators_frame))

    def predictions(self, symbol: str, interval: str, start: datetime) -> Fetched:
        """Predictions of bars starting at or after ``start`` as a ``predictions_frame``."""
        params = {"interval": interval, "start": start.isoformat(), "limit": 1000}
        return self.http.get(self._url("/api/v1/predictions", symbol), params, _items(predictions_frame))

    def anomalies(self, symbol: str, since: datetime, limit: int = 200) -> Fetched:
        """The newest ``limit`` anomalies of ``symbol`` at or after ``since`` as an ``anomalies_frame``."""
        params = {"symbol": symbol, "since": since.isoformat(), "order": "desc", "limit": limit}
        return self.http.get(self._url("/api/v1/anomalies"), params, _items(anomalies_frame))

    def ready(self) -> Fetched:
        """The ``/ready`` body (a 503 body too: it lists the failing checks)."""
        return self.http.get(self._url("/ready"), accept=(503,))

    def ml_status(self) -> Fetched:
        """The prediction service's state (``/api/v1/ml/status`` body: ``running``, ``series``)."""
        return self.http.get(self._url("/api/v1/ml/status"))

    def metrics(self, url: str) -> Fetched:
        """Prometheus text exposition of ``url``."""
        return self.http.get(url, parse=text_body)

    def close(self) -> None:
        self.http.close()


def metrics_urls(settings: Settings) -> list[str]:
    """Prometheus endpoints of the health panel: ``dashboard_metrics_urls``, or by default the API's
    ``/metrics`` and the producer, bars and indicators metrics ports on 127.0.0.1."""
    if settings.dashboard_metrics_urls:
        return list(settings.dashboard_metrics_urls)
    ports = (settings.producer_metrics_port, settings.bars_metrics_port, settings.indicators_metrics_port)
    return [f"{settings.api_url.rstrip('/')}/metrics", *(f"http://127.0.0.1:{p}/metrics" for p in ports)]
