"""The lean path of ``GET /api/v1/latest/{symbol}``: an ASGI middleware that answers from memory.

When this process holds the symbol's latest price (``api.latest``: precomputed ``LatestPrice`` JSON bytes)
and the request passes the same checks as the route (API key when auth is on, a served symbol), the answer
is written straight to the ASGI server: no routing, dependency resolution or response validation, which
cost more than the answer itself. Everything else (a miss, a bad key, an unknown symbol, query strings are
ignored) goes on to the FastAPI route, which answers the same way from memory or falls back to Redis and
PostgreSQL. Placed inside the metrics and CORS middlewares, so those still see every request.
"""

from __future__ import annotations

from types import SimpleNamespace

from starlette.types import ASGIApp, Receive, Scope, Send

from tickflow.apikeys import API_KEY_HEADER, key_is_valid

PREFIX = "/api/v1/latest/"
ROUTE = SimpleNamespace(path=PREFIX + "{symbol}")  # what the metrics middleware labels requests with
_KEY_HEADER = API_KEY_HEADER.lower().encode()
_JSON = (b"content-type", b"application/json")


class LatestFastPath:
    """Serves ``GET /api/v1/latest/{symbol}`` from memory when it can; passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self._answer(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        if body is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = ROUTE
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [_JSON, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _answer(self, scope: Scope) -> bytes | None:
        """The memory's JSON for this request, or None when the route must answer."""
        path: str = scope["path"]
        if not path.startswith(PREFIX):
            return None
        resources = getattr(scope["app"].state, "resources", None)
        if resources is None:
            return None
        settings = resources.settings
        if settings.api_auth:
            key = next((v for k, v in scope["headers"] if k == _KEY_HEADER), None)
            if key is None or not key_is_valid(key.decode("latin-1"), settings.api_keys):
                return None
        symbol = path[len(PREFIX) :].strip().upper()
        if not symbol or len(symbol) > 32 or "/" in symbol or not resources.catalog.known_cached(symbol):
            return None
        return resources.store.latest.price_json(symbol)
