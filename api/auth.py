"""API-key checks shared by REST, the protected operational routes and the WebSocket.

A key is presented in the ``X-API-Key`` header or as ``Authorization: Bearer <key>``; the operational
routes (``/metrics``, ``/docs``, ``/redoc``, ``/openapi.json``) also take HTTP Basic with the key as the
password, so a browser can open the docs. The WebSocket also takes it in its first message, or (legacy)
in the ``api_key`` query parameter, which ``api.logredact`` removes from every log line.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from tickflow.apikeys import API_KEY_HEADER

API_KEY_QUERY = "api_key"
AUTHORIZATION = "Authorization"


def header_key(headers: Mapping[str, str], basic: bool = False) -> str | None:
    """The key in ``X-API-Key`` or ``Authorization: Bearer``; with ``basic``, also the password of
    ``Authorization: Basic`` (any user name). None when there is none. ``headers`` is case-insensitive
    (Starlette's ``Headers``)."""
    key = headers.get(API_KEY_HEADER)
    if key:
        return key
    scheme, _, credentials = (headers.get(AUTHORIZATION) or "").partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return credentials.strip() or None
    if basic and scheme == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None
