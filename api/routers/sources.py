"""``GET /api/v1/sources``: the quality of every live source (exchange, symbol) that producers published."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from api.deps import ResourcesDep, require_api_key
from api.models import ErrorResponse
from tickflow.quality import SOURCE_QUALITY_PATTERN, SourceQuality

SCAN_COUNT = 500

router = APIRouter(
    prefix="/api/v1",
    tags=["sources"],
    dependencies=[Depends(require_api_key)],
    responses={
        401: {"model": ErrorResponse, "description": "Missing or invalid API key (when auth is on)."},
        503: {"model": ErrorResponse, "description": "Redis unavailable."},
    },
)


class SourceList(BaseModel):
    """Quality records (``tickflow.quality.SourceQuality``), best score first within each symbol."""

    sources: list[SourceQuality]


@router.get("/sources", response_model=SourceList)
async def sources(
    resources: ResourcesDep,
    exchange: Annotated[str | None, Query(max_length=64, description="Only this exchange.")] = None,
    symbol: Annotated[str | None, Query(max_length=64, description="Only this symbol.")] = None,
) -> SourceList:
    """Rolling quality per (exchange, symbol): rates of dead letters, duplicates and gaps, staleness,
    ingest latency and the score 0..1 (see ``tickflow.quality``). Records expire with their producer."""
    redis = resources.redis
    try:
        keys = [key async for key in redis.scan_iter(match=SOURCE_QUALITY_PATTERN, count=SCAN_COUNT)]
        values = await redis.mget(keys) if keys else []
    except RedisError as exc:
        raise HTTPException(503, f"redis unavailable: {type(exc).__name__}") from exc
    found: list[SourceQuality] = []
    for value in values:
        if value is None:  # expired between SCAN and MGET
            continue
        try:
            record = SourceQuality.from_wire(value)
        except ValidationError:
            continue
        if (exchange is None or record.exchange == exchange) and (symbol is None or record.symbol == symbol):
            found.append(record)
    found.sort(key=lambda r: (r.symbol, -r.score, r.exchange))
    return SourceList(sources=found)
