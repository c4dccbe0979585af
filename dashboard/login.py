"""The dashboard's login when ``api_auth`` is on: HTTP Basic (dash-auth), any user name, an API key of
``api_keys`` as the password. Every route of the Dash server needs it (the page, the layout, assets and
callbacks) except ``OPEN_PATHS`` (the liveness probe).
"""

from __future__ import annotations

import secrets

import dash_auth
from dash import Dash
from flask import request

from tickflow.apikeys import key_is_valid
from tickflow.settings import Settings, revealed

OPEN_PATHS = frozenset({"/live"})


def require_login(app: Dash, settings: Settings) -> bool:
    """Put ``app`` behind the login when ``settings.api_auth`` is on; True when it did."""
    if not settings.api_auth:
        return False
    keys = revealed(settings.api_keys)

    def check(_user: str, password: str) -> bool:
        return key_is_valid(password, keys)

    def open_probe() -> str | None:  # registered first, so it answers before the login check runs
        return "ok" if request.path in OPEN_PATHS else None

    app.server.before_request(open_probe)
    # no public_routes: dash-auth would then also open the layout, dependencies and component suites
    dash_auth.BasicAuth(app, auth_func=check, secret_key=secrets.token_hex(32))
    return True
