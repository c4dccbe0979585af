"""``/api/v1``: symbols, latest prices, ticks, bars, indicators, anomalies and predictions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel

from api.deps import (
    ResourcesDep,
    bar_interval,
    known_symbol,
    newest_first,
    oldest_first,
    optional_symbol,
    require_api_key,
    since_window,
)
from api.models import (
    AnomalyPage,
    BarPage,
    ErrorResponse,
    IndicatorPage,
    IndicatorRow,
    LatestPrice,
    Page,
    Prediction,
    PredictionPage,
    SymbolList,
    TickPage,
)
from api.pagination import Window
from api.queries import ANOMALIES, BARS, INDICATORS, PREDICTIONS, TICKS, TableSpec
from api.resources import Resources
from api.responses import JSONBytes
from tickflow.keys import bar_key, indicators_key, prediction_key
from tickflow.schemas import OHLCVBar

Symbol = Annotated[str, Depends(known_symbol)]
Interval = Annotated[str, Depends(bar_interval)]
NOT_FOUND = {404: {"model": ErrorResponse, "description": "Unknown symbol."}}
SeriesPage = TypeVar("SeriesPage", bound=Page)

router = APIRouter(
    prefix="/api/v1",
    tags=["market data"],
    dependencies=[Depends(require_api_key)],
    responses={
        401: {"model": ErrorResponse, "description": "Missing or invalid API key (when auth is on)."},
        503: {"model": ErrorResponse, "description": "PostgreSQL unavailable."},
    },
)


@router.get("/symbols", response_model=SymbolList)
async def symbols(resources: ResourcesDep) -> SymbolList:
    """Served symbols: the configured universe, then unlisted symbols found in the stored bars."""
    return SymbolList(symbols=await resources.catalog.all())


@router.get("/latest/{symbol}", response_model=LatestPrice, responses=NOT_FOUND)
async def latest(symbol: Symbol, resources: ResourcesDep) -> LatestPrice | Response:
    """Latest traded price: from the API's memory (its tick and bar feeds; `source: memory`), else Redis
    `latest_price:{symbol}` (or its latest 1m bar), else PostgreSQL."""
    body = resources.store.latest.price_json(symbol)
    if body is not None:
        return JSONBytes(body)
    price = await resources.store.latest_price(symbol)
    if price is None:
        raise HTTPException(404, f"no price for {symbol} yet")
    return price


@router.get("/ticks/{symbol}", response_model=TickPage, responses=NOT_FOUND)
async def ticks(
    symbol: Symbol, resources: ResourcesDep, window: Annotated[Window, Depends(oldest_first)]
) -> TickPage:
    """Stored trades with `start <= event_time < end`, paged by (event_time, exchange, trade_id)."""
    rows, cursor = await resources.store.page(TICKS, {"symbol": symbol}, window)
    return TickPage.model_validate({"symbol": symbol, "items": rows, "next_cursor": cursor})


@router.get("/bars/{symbol}", response_model=BarPage, responses=NOT_FOUND)
async def bars(
    symbol: Symbol,
    interval: Interval,
    resources: ResourcesDep,
    window: Annotated[Window, Depends(oldest_first)],
) -> BarPage:
    """OHLCV/VWAP bars with `start <= window_start < end`; the latest bar (and its latest revision) comes
    from the API's memory (its pub/sub feed) or Redis `bars:{symbol}:{interval}`, the rest from
    PostgreSQL `ohlcv`."""
    return await _series_page(BarPage, BARS, OHLCVBar, bar_key, symbol, interval, resources, window, "bar")


@router.get(
    "/aggregated/{symbol}",
    response_model=BarPage,
    responses=NOT_FOUND,
    deprecated=True,
    summary="Bars (alias of /bars/{symbol})",
)
async def aggregated(
    symbol: Symbol,
    interval: Interval,
    resources: ResourcesDep,
    window: Annotated[Window, Depends(oldest_first)],
) -> BarPage:
    """The same as `GET /api/v1/bars/{symbol}`: kept for clients written against the name used before the
    one bar vocabulary (issue 17); new clients use `/bars`."""
    return await bars(symbol, interval, resources, window)


@router.get("/indicators/{symbol}", response_model=IndicatorPage, responses=NOT_FOUND)
async def indicators(
    symbol: Symbol,
    interval: Interval,
    resources: ResourcesDep,
    window: Annotated[Window, Depends(oldest_first)],
) -> IndicatorPage:
    """SMA, EMA, RSI, MACD and Bollinger values per bar; the latest from memory or Redis, the rest from
    PostgreSQL."""
    return await _series_page(
        IndicatorPage,
        INDICATORS,
        IndicatorRow,
        indicators_key,
        symbol,
        interval,
        resources,
        window,
        "indicators",
    )


@router.get("/anomalies", response_model=AnomalyPage, responses=NOT_FOUND)
async def anomalies(
    resources: ResourcesDep,
    symbol: Annotated[str | None, Depends(optional_symbol)],
    window: Annotated[Window, Depends(since_window)],
) -> AnomalyPage:
    """Detected anomalies at or after `since` (all symbols, or one), paged by event time."""
    filters = {} if symbol is None else {"symbol": symbol}
    rows, cursor = await resources.store.page(ANOMALIES, filters, window)
    return AnomalyPage.model_validate({"items": rows, "next_cursor": cursor})


@router.get("/predictions/{symbol}", response_model=PredictionPage, responses=NOT_FOUND)
async def predictions(
    symbol: Symbol,
    interval: Interval,
    resources: ResourcesDep,
    window: Annotated[Window, Depends(newest_first)],
) -> PredictionPage:
    """Price predictions, newest bar first; the latest from Redis `prediction:{symbol}:{interval}`."""
    return await _series_page(
        PredictionPage, PREDICTIONS, Prediction, prediction_key, symbol, interval, resources, window
    )


async def _series_page(
    page: type[SeriesPage],
    spec: TableSpec,
    item: type[BaseModel],
    latest_key: Callable[[str, str], str],
    symbol: str,
    interval: str,
    resources: Resources,
    window: Window,
    memory_kind: str | None = None,
) -> SeriesPage:
    """One page of the rows of ``symbol``/``interval`` in ``spec``'s table, the newest row merged from
    memory (``memory_kind`` of ``api.latest``, when this process saw one) or the Redis key
    ``latest_key(symbol, interval)`` (an ``item``)."""
    store = resources.store
    in_memory = None if memory_kind is None else store.latest.current(memory_kind, symbol, interval)
    rows, cursor = await store.page(
        spec,
        {"symbol": symbol, "interval": interval},
        window,
        (item, latest_key(symbol, interval)),
        in_memory,
    )
    return page.model_validate({"symbol": symbol, "interval": interval, "items": rows, "next_cursor": cursor})
