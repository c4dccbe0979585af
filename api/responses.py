"""Responses of already-serialised JSON (no validation, no re-encoding)."""

from __future__ import annotations

from starlette.responses import Response


class JSONBytes(Response):
    """A 200 ``application/json`` response whose body is JSON bytes built earlier (e.g. once per update)."""

    media_type = "application/json"
