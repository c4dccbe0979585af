"""FastAPI dependencies: resources, API-key auth, and validated path/query parameters.

They are all ``async def``: FastAPI runs plain ``def`` dependencies on the thread pool, which costs more
than the dependencies themselves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Query, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from starlette.requests import HTTPConnection, Request

from api.auth import header_key
from api.pagination import InvalidCursorError, Order, Window, decode_cursor, to_utc
from api.resources import Resources
from tickflow.apikeys import API_KEY_HEADER, key_is_valid

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
NOT_FOUND = "unknown symbol {!r}; GET /api/v1/symbols lists the served ones"


async def get_resources(connection: HTTPConnection) -> Resources:
    return connection.app.state.resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


_api_key = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="API key (when auth is on).")


async def require_api_key(request: Request, key: Annotated[str | None, Security(_api_key)]) -> None:
    """401 unless auth is off or the ``X-API-Key`` header (or ``Authorization: Bearer``) holds an accepted
    key."""
    settings = request.app.state.settings
    if settings.api_auth and not key_is_valid(key or header_key(request.headers), settings.api_keys):
        raise HTTPException(
            401,
            f"missing or invalid API key (header {API_KEY_HEADER})",
            headers={"WWW-Authenticate": "ApiKey"},
        )


def invalid(location: tuple[str, str], message: str, value: Any) -> RequestValidationError:
    """A 422 with FastAPI's usual body for a parameter that passed type checks but not ours."""
    return RequestValidationError([{"type": "value_error", "loc": location, "msg": message, "input": value}])


async def known_symbol(
    resources: ResourcesDep,
    symbol: Annotated[str, Path(min_length=1, max_length=32, description="Normalised symbol, e.g. BTC-USD.")],
) -> str:
    """The symbol upper-cased; 404 when it is not served."""
    normalised = symbol.strip().upper()
    if not await resources.catalog.known(normalised):
        raise HTTPException(404, NOT_FOUND.format(symbol))
    return normalised


async def optional_symbol(
    resources: ResourcesDep,
    symbol: Annotated[str | None, Query(min_length=1, max_length=32, description="Only this symbol.")] = None,
) -> str | None:
    if symbol is None:
        return None
    return await known_symbol(resources, symbol)


async def bar_interval(
    request: Request,
    interval: Annotated[str, Query(max_length=8, description="Bar interval: 1m, 5m or 15m.")] = "1m",
) -> str:
    """The interval; 422 unless it is one of ``Settings.intervals``."""
    served = request.app.state.settings.intervals
    if interval not in served:
        raise invalid(("query", "interval"), f"interval must be one of {', '.join(served)}", interval)
    return interval


Start = Annotated[
    datetime | None, Query(description="Inclusive lower time bound, ISO-8601 (no offset: UTC).")
]
End = Annotated[datetime | None, Query(description="Exclusive upper time bound, ISO-8601 (no offset: UTC).")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Most rows per page.")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page (opaque).")
]


def _window(
    names: tuple[str, str],
    start: datetime | None,
    end: datetime | None,
    limit: int,
    cursor: str | None,
    order: Order,
) -> Window:
    bounds = []
    for name, value in zip(names, (start, end), strict=True):
        try:
            bounds.append(None if value is None else to_utc(value))
        except OverflowError as exc:
            raise invalid(("query", name), "time out of range", str(value)) from exc
    if bounds[0] is not None and bounds[1] is not None and bounds[0] >= bounds[1]:
        raise invalid(("query", names[1]), f"{names[1]} must be after {names[0]}", str(end))
    try:
        key = None if cursor is None else decode_cursor(cursor)
    except InvalidCursorError as exc:
        raise invalid(("query", "cursor"), str(exc), cursor) from exc
    return Window(start=bounds[0], end=bounds[1], limit=limit, order=order, cursor=key)


async def oldest_first(
    start: Start = None,
    end: End = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    order: Order = Order.ASC,
) -> Window:
    """A time window paged oldest first by default."""
    return _window(("start", "end"), start, end, limit, cursor, order)


async def newest_first(
    start: Start = None,
    end: End = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    order: Order = Order.DESC,
) -> Window:
    """A time window paged newest first by default."""
    return _window(("start", "end"), start, end, limit, cursor, order)


async def since_window(
    since: Annotated[
        datetime | None, Query(description="Only anomalies at or after this time (ISO-8601).")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    order: Order = Order.ASC,
) -> Window:
    """The anomalies window: ``since`` onwards."""
    return _window(("since", "end"), since, None, limit, cursor, order)
