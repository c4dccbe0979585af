"""``GET /api/v1/ml/status``: what `tickflow ml serve` is doing per series (the Redis key it writes)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from api.deps import ResourcesDep, require_api_key
from api.models import ErrorResponse
from tickflow.keys import ML_STATUS_KEY

router = APIRouter(
    prefix="/api/v1",
    tags=["predictions"],
    dependencies=[Depends(require_api_key)],
    responses={
        401: {"model": ErrorResponse, "description": "Missing or invalid API key (when auth is on)."},
        503: {"model": ErrorResponse, "description": "Redis unavailable."},
    },
)


class MlSeriesStatus(BaseModel):
    """One series: ``waiting`` for ``missing_bars`` more final bars, ``training``, or ``predicting`` every
    final bar with ``model_version``; ``last_base`` the newest bar predicted from; the live walk-forward
    score of the served predictions whose bar is final: ``scored_bars``, ``rmse_vs_naive`` (< 1 beats the
    last close) and ``band_coverage`` (share of closes inside the band; nominal level ``band``)."""

    symbol: str
    interval: str
    state: Literal["waiting", "training", "predicting"]
    missing_bars: int | None = None
    model_version: str | None = None
    last_base: datetime | None = None
    band: float | None = None
    scored_bars: int = 0
    rmse_vs_naive: float | None = None
    band_coverage: float | None = None


class MlStatus(BaseModel):
    """``running`` is false when the service has written no status within its TTL (5 min)."""

    running: bool
    updated_at: datetime | None = None
    series: list[MlSeriesStatus] = []


@router.get("/ml/status", response_model=MlStatus)
async def ml_status(resources: ResourcesDep) -> MlStatus:
    """The prediction service's state (``tickflow.keys.ML_STATUS_KEY``)."""
    try:
        raw = await resources.redis.get(ML_STATUS_KEY)
    except RedisError as exc:
        raise HTTPException(503, f"redis unavailable: {type(exc).__name__}") from exc
    if raw is None:
        return MlStatus(running=False)
    try:
        payload = orjson.loads(raw)
        return MlStatus.model_validate({**payload, "running": True})
    except (orjson.JSONDecodeError, TypeError, ValidationError):
        return MlStatus(running=False)
