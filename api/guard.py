"""``OperationsGuard``: with ``api_auth`` on, the operational routes that reveal internals (``/metrics``, the
OpenAPI schema and the docs pages) need an API key like the data routes.

A key is taken from ``X-API-Key``, ``Authorization: Bearer`` (Prometheus' ``authorization`` scrape option)
or HTTP Basic with the key as password (a browser's login prompt, which then also covers the docs page's
fetch of ``/openapi.json``). ``/live``, ``/health`` and ``/ready`` stay open for orchestrators.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import header_key
from tickflow.apikeys import key_is_valid

PROTECTED_PATHS = frozenset({"/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


class OperationsGuard:
    """401 on ``PROTECTED_PATHS`` without a valid key when ``api_auth`` is on; everything else passes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in PROTECTED_PATHS:
            settings = scope["app"].state.settings
            key = header_key(Headers(scope=scope), basic=True)
            if settings.api_auth and not key_is_valid(key, settings.api_keys):
                response = JSONResponse(
                    {"detail": "missing or invalid API key (X-API-Key, Bearer or Basic password)"},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="tickflow", charset="UTF-8"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
