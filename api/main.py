"""The FastAPI application: ``create_app(settings)`` wires routes, middleware and the lifespan.

Run it with ``tickflow api`` or ``uvicorn --factory api.main:create_app``; OpenAPI docs are at ``/docs``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import psycopg2
import structlog
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from api.fastlane import LatestFastPath
from api.guard import OperationsGuard
from api.metrics import ApiMetrics, MetricsMiddleware
from api.pagination import InvalidCursorError
from api.resources import open_resources
from api.routers import health, market, ml, sources, ws
from tickflow.apikeys import API_KEY_HEADER
from tickflow.settings import Settings, get_settings

log = structlog.get_logger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API app for ``settings`` (default: ``get_settings()``, i.e. ``TICKFLOW_*`` variables)."""
    settings = settings or get_settings()
    metrics = ApiMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.api_auth and not settings.api_keys:
            log.warning("api_auth is on but api_keys is empty: every request will be rejected")
        async with open_resources(settings, metrics) as resources:
            app.state.resources = resources
            yield

    app = FastAPI(
        title="Tickflow API",
        version="1",
        summary="Real-time market data: prices, ticks, OHLCV bars, indicators, anomalies, predictions.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(OperationsGuard)  # with auth on, /metrics and the docs need a key
    app.add_middleware(LatestFastPath)  # innermost: CORS and metrics still see its answers
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET"],
        allow_headers=[API_KEY_HEADER, "Authorization"],
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.include_router(market.router)
    app.include_router(health.router)
    app.include_router(sources.router)
    app.include_router(ml.router)
    app.include_router(ws.router)
    app.add_exception_handler(psycopg2.Error, _database_unavailable)
    app.add_exception_handler(InvalidCursorError, _invalid_cursor)
    return app


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database error", path=request.url.path, error=str(exc).strip())
    if isinstance(exc, psycopg2.OperationalError | psycopg2.pool.PoolError):  # no host or user names out
        return JSONResponse({"detail": "database unavailable"}, status_code=503)
    return JSONResponse({"detail": "database error"}, status_code=500)


async def _invalid_cursor(request: Request, exc: Exception) -> JSONResponse:
    detail = [{"type": "value_error", "loc": ["query", "cursor"], "msg": str(exc)}]
    return JSONResponse({"detail": detail}, status_code=422)
