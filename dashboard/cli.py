"""`tickflow dashboard`: serve the Dash dashboard (waitress, a production WSGI server)."""

from __future__ import annotations

from typing import Annotated

import typer

from tickflow.settings import get_settings


def dashboard(
    host: Annotated[str | None, typer.Option(help="Bind address (default: TICKFLOW_DASHBOARD_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: TICKFLOW_DASHBOARD_PORT).")] = None,
    threads: Annotated[int, typer.Option(min=1, help="Worker threads (concurrent callbacks).")] = 8,
) -> None:
    """Start the dashboard on ``dashboard_host:dashboard_port``, reading the API at ``api_url``."""
    import structlog
    from waitress import serve

    from dashboard.app import create_app

    settings = get_settings()
    host, port = host or settings.dashboard_host, port or settings.dashboard_port
    app = create_app(settings)
    structlog.get_logger(__name__).info("dashboard", url=f"http://{host}:{port}/", api=settings.api_url)
    serve(app.server, host=host, port=port, threads=threads, ident="tickflow-dashboard")
