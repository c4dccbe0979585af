"""`tickflow api`: serve the REST and WebSocket API with uvicorn."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from tickflow.settings import get_settings


def api(
    host: Annotated[str | None, typer.Option(help="Bind address (default: TICKFLOW_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: TICKFLOW_API_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (they share fan-out via Redis).")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    access_log: Annotated[
        bool, typer.Option(help="Log every request (Prometheus counts them anyway).")
    ] = False,
) -> None:
    """Start the REST/WebSocket API on ``api_host:api_port`` (OpenAPI docs at ``/docs``).

    The listening socket gets ``SO_SNDBUF = api_socket_send_buffer``, which accepted connections inherit,
    so a client that stops reading fills its bounded send queue within a known number of bytes. Every log
    handler redacts ``api_key=`` query values (``api.logredact``).
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from api.logredact import uvicorn_log_config

    settings = get_settings()
    config = uvicorn.Config(
        "api.main:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers,
        log_level=log_level,
        log_config=uvicorn_log_config(),
        access_log=access_log,
        ws_max_size=settings.api_ws_max_message_bytes,
        ws_per_message_deflate=settings.api_ws_compression,
        timeout_graceful_shutdown=5,
    )
    sock = config.bind_socket()
    if settings.api_socket_send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.api_socket_send_buffer)
    if workers > 1:
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])
