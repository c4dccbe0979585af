"""The Dash app: ``create_app(settings)`` builds the page and wires its callbacks to the REST API.

Every ``dashboard_refresh_s`` seconds (a ``dcc.Interval``) and on every control change the page re-reads
the chart's range through the API (responses shared by all sessions for ``dashboard_cache_ttl_s``); the
health panel scrapes the services' Prometheus endpoints on the same beat.
"""

from __future__ import annotations

from pathlib import Path

from dash import Dash, Input, Output, State

from dashboard import layout
from dashboard.health import HealthMonitor
from dashboard.http_cache import FetchError
from dashboard.login import require_login
from dashboard.source import TickflowApi, metrics_urls
from dashboard.view import bars_needed, load_chart
from tickflow.settings import Settings, get_settings

ASSETS = Path(__file__).parent / "assets"


def create_app(settings: Settings | None = None) -> Dash:
    """The dashboard of ``settings`` (default: ``get_settings()``); ``app.server`` is its WSGI app, behind a
    login (``dashboard.login``) when ``api_auth`` is on."""
    settings = settings or get_settings()
    api = TickflowApi(settings)
    monitor = HealthMonitor(api, metrics_urls(settings))
    app = Dash(__name__, title="Tickflow", update_title=None, assets_folder=str(ASSETS))
    app.layout = layout.page(settings)
    app.server.add_url_rule("/live", "live", lambda: "ok")  # liveness, open even behind the login
    require_login(app, settings)  # HTTP Basic, password an API key, when api_auth is on

    @app.callback(
        Output("symbol", "options"),
        Input("symbols-refresh", "n_intervals"),
        State("symbol", "value"),
    )
    def refresh_symbols(_: int | None, current: str | None) -> list[dict[str, str]]:
        try:
            symbols = list(api.symbols().data)
        except FetchError:
            symbols = list(settings.symbols)
        if current and current not in symbols:
            symbols.append(current)
        return [{"label": s, "value": s} for s in symbols]

    @app.callback(
        Output("chart", "figure"),
        Output("quote", "children"),
        Output("status", "children"),
        Output("notice", "children"),
        Output("notice", "className"),
        Output("anomalies", "children"),
        Input("refresh", "n_intervals"),
        Input("symbol", "value"),
        Input("interval", "value"),
        Input("range", "value"),
        Input("anomaly-types", "value"),
        Input("anomaly-severities", "value"),
    )
    def refresh_chart(
        _: int | None,
        symbol: str,
        interval: str,
        range_key: str,
        types: list[str] | None = None,
        severities: list[str] | None = None,
    ) -> tuple[object, ...]:
        view = load_chart(api, symbol, interval, range_key)
        notice, notice_class = layout.notice(view.notices)
        return (
            view.figure,
            layout.quote(symbol, view.bars),
            layout.status(view.received_at, view.stale),
            notice,
            notice_class,
            layout.anomalies_table(symbol, layout.filter_anomalies(view.anomalies, types, severities)),
        )

    @app.callback(
        Output("health", "children"),
        Input("refresh", "n_intervals"),
        Input("symbol", "value"),
        Input("interval", "value"),
        Input("range", "value"),
    )
    def refresh_health(_: int | None, symbol: str, interval: str, range_key: str) -> list[object]:
        try:  # the chart's request: a cache hit
            bars = api.bars(symbol, interval, bars_needed(range_key, interval)).data
        except FetchError:
            bars = None
        newest = None if bars is None or bars.empty else bars.iloc[-1]
        return layout.health_cards(monitor.cards(newest, interval, symbol=symbol))

    return app
