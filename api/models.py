"""Pydantic response models of the REST API.

Timestamps are ISO-8601 UTC strings with microsecond resolution; prices are in quote currency, sizes and
volumes in base units. Bars are ``tickflow.schemas.OHLCVBar``, anomalies ``tickflow.anomaly.Anomaly``,
indicator rows and predictions ``tickflow.rows``: the same shapes the pipeline writes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from tickflow.anomaly import Anomaly
from tickflow.rows import IndicatorRow, Prediction
from tickflow.schemas import OHLCVBar

ReadSource = Literal["memory", "redis", "postgres"]
"""Where a latest value was read: this process's memory (its feeds), Redis, or PostgreSQL."""


class ErrorResponse(BaseModel):
    """Body of 401, 404 and 503 responses."""

    detail: str


class SymbolInfo(BaseModel):
    """A symbol the API serves."""

    symbol: str
    listed: bool = Field(description="In the configured universe (`TICKFLOW_SYMBOLS`); false: seen in data.")


class SymbolList(BaseModel):
    """``GET /api/v1/symbols``."""

    symbols: list[SymbolInfo]


class LatestPrice(BaseModel):
    """Latest traded price of a symbol and where it was read."""

    symbol: str
    price: float = Field(description="Quote currency per base unit.")
    time: datetime = Field(description="Event time of the trade (UTC).")
    source: ReadSource


class TickRecord(BaseModel):
    """One stored trade: a row of ``tick_data``."""

    symbol: str
    exchange: str
    trade_id: str
    event_time: datetime
    receipt_time: datetime
    price: float = Field(description="Quote currency per base unit.")
    size: float = Field(description="Base units.")
    side: str = Field(description="Taker side: buy, sell or unknown.")
    source: str


class Page(BaseModel):
    """Common fields of a time-ordered page; pass ``next_cursor`` as ``cursor`` to get the next page."""

    next_cursor: str | None = Field(description="Opaque cursor of the next page; null on the last page.")


class TickPage(Page):
    symbol: str
    items: list[TickRecord]


class BarPage(Page):
    symbol: str
    interval: str
    items: list[OHLCVBar]


class IndicatorPage(Page):
    symbol: str
    interval: str
    items: list[IndicatorRow]


class AnomalyPage(Page):
    items: list[Anomaly]


class PredictionPage(Page):
    symbol: str
    interval: str
    items: list[Prediction]


class Check(BaseModel):
    """Result of one readiness check."""

    ok: bool
    detail: str
    latency_ms: float


class Readiness(BaseModel):
    """``GET /ready``: 200 when every dependency answers, else 503."""

    ready: bool
    checks: dict[str, Check]


class Health(BaseModel):
    """``GET /health``: the process and its feeds."""

    status: Literal["ok"]
    uptime_s: float
    ws_clients: int
    tick_feed_positioned: bool = Field(
        description="The Kafka tick consumer has reached the end of the topic."
    )
    pubsub_connected: bool = Field(description="The Redis pub/sub feed is subscribed.")
