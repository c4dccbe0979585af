"""`tickflow api`: serve the REST and WebSocket API with uvicorn."""

from __future__ import annotations


def api() -> None:
    """Start the REST/WebSocket API on ``api_host:api_port``."""
    raise NotImplementedError("being built (issue 6)")
