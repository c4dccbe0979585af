"""The page: a top bar with the controls and the live quote, the market chart, the pipeline-health panel
and the anomalies table; plus the renderers of the parts the callbacks update."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import pandas as pd
from dash import dcc, html

from dashboard.figures import display_times, empty_figure, is_stock
from dashboard.health import Card
from dashboard.view import DEFAULT_RANGE, RANGES
from tickflow.settings import Settings

ANOMALY_ROWS: Final = 50
VALUE_UNITS: Final = {
    "price_spike": "%",
    "volume_spike": "× mean",
    "rsi_extreme": "",
    "pipeline_latency": " ms",
    "return_zscore": " σ",
    "bar_freshness": " ms",
    "ingest_latency": " ms",
    "broker_latency": " ms",
    "fast_path_latency": " ms",
    "feed_failover": "",
}
"""Unit of an anomaly's ``value`` and ``threshold`` by type (see ``tickflow.anomaly``)."""
SEVERITIES: Final = ("info", "warning", "critical")


def _pills(component_id: str, options: list[str], value: str) -> dcc.RadioItems:
    return dcc.RadioItems(
        id=component_id,
        options=[{"label": option, "value": option} for option in options],
        value=value,
        className="pills",
        labelClassName="pill",
    )


def _control(label: str, component: object) -> html.Div:
    return html.Div([html.Span(label, className="control-label"), component], className="control")


def page(settings: Settings) -> html.Div:
    """The whole page; live parts start empty and are filled by the first refresh."""
    symbol = settings.symbols[0] if settings.symbols else None
    symbol_picker = dcc.Dropdown(
        id="symbol",
        options=[{"label": s, "value": s} for s in settings.symbols],
        value=symbol,
        clearable=False,
        searchable=True,
        className="symbol-picker",
    )
    interval = "1m" if "1m" in settings.intervals else settings.intervals[0]
    header = html.Header(
        [
            html.Div([html.Span("◆", className="logo"), "Tickflow"], className="brand"),
            _control("Symbol", symbol_picker),
            _control("Interval", _pills("interval", list(settings.intervals), interval)),
            _control("Range", _pills("range", list(RANGES), DEFAULT_RANGE)),
            html.Div(id="quote", className="quote"),
            html.Div(id="status", className="status"),
        ],
        className="topbar",
    )
    chart = dcc.Graph(
        id="chart",
        figure=empty_figure("Loading…"),
        config={"displaylogo": False, "scrollZoom": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"]},
        className="chart",
    )
    lower = html.Div(
        [
            html.Section(
                [html.H2("Pipeline health"), html.Div(id="health", className="health-grid")], className="card"
            ),
            html.Section(
                [html.H2("Anomalies"), anomaly_filters(), html.Div(id="anomalies", className="table-wrap")],
                className="card anomalies",
            ),
        ],
        className="lower",
    )
    refresh_ms = int(settings.dashboard_refresh_s * 1000)
    return html.Div(
        [
            header,
            html.Div(id="notice", className="notice hidden"),
            html.Main([html.Section(chart, className="card chart-card"), lower]),
            dcc.Interval(id="refresh", interval=refresh_ms),
            dcc.Interval(id="symbols-refresh", interval=30_000),
        ],
        className="app",
    )


def format_price(price: float) -> str:
    """``25,785.33`` for prices of 1 and more, 6 significant digits below."""
    return f"{price:,.2f}" if abs(price) >= 1 else f"{price:.6g}"


def format_amount(amount: float) -> str:
    """``46,731`` for amounts of 1,000 and more, 4 significant digits below (``211.3``, ``0.01234``)."""
    return f"{amount:,.0f}" if abs(amount) >= 1000 else f"{amount:.4g}"


def quote(symbol: str, bars: pd.DataFrame) -> list[object]:
    """Last close, change over the shown range, range high/low and volume."""
    if bars.empty:
        return [html.Span(symbol, className="quote-symbol"), html.Span("no data", className="quote-muted")]
    last, first = bars.iloc[-1], bars.iloc[0]
    change = last["close"] / first["open"] - 1.0
    direction = "up" if change >= 0 else "down"
    return [
        html.Span(symbol, className="quote-symbol"),
        html.Span(format_price(last["close"]), className="quote-price"),
        html.Span(f"{'▲' if change >= 0 else '▼'} {change:+.2%}", className=f"quote-change {direction}"),
        html.Span(
            f"H {format_price(bars['high'].max())} · L {format_price(bars['low'].min())} · "
            f"Vol {format_amount(bars['volume'].sum())}",
            className="quote-muted",
        ),
    ]


def status(received_at: float | None, stale: bool) -> list[object]:
    """``● LIVE 17:00:02 UTC`` (green), ``STALE`` (amber: cached data) or ``OFFLINE`` (red: none)."""
    if received_at is None:
        return [html.Span(className="dot bad"), html.Span("OFFLINE", className="status-text")]
    at = datetime.fromtimestamp(received_at, UTC).strftime("%H:%M:%S UTC")
    state, level = ("STALE", "warn") if stale else ("LIVE", "ok")
    return [html.Span(className=f"dot {level}"), html.Span(state, className="status-text"), html.Span(at)]


def notice(messages: list[str]) -> tuple[list[object], str]:
    """Children and class of the notice bar (hidden when there is nothing to say)."""
    if not messages:
        return [], "notice hidden"
    return [html.Div(message) for message in dict.fromkeys(messages)], "notice"


def health_cards(cards: list[Card]) -> list[html.Div]:
    """One tile per card, coloured by its level."""
    return [
        html.Div(
            [
                html.Div(card.title, className="metric-title"),
                html.Div(card.value, className="metric-value"),
                html.Div(card.detail, className="metric-detail", title=card.detail),
            ],
            className=f"metric {card.level}",
        )
        for card in cards
    ]


def anomaly_filters() -> html.Div:
    """Multi-selects of anomaly types (``anomaly-types``) and severities (``anomaly-severities``); none
    selected shows all."""
    types = [{"label": t.replace("_", " "), "value": t} for t in VALUE_UNITS if t != "pipeline_latency"]
    return html.Div(
        [
            dcc.Dropdown(id="anomaly-types", options=types, multi=True, placeholder="All types"),
            dcc.Dropdown(
                id="anomaly-severities",
                options=[{"label": s, "value": s} for s in SEVERITIES],
                multi=True,
                placeholder="All severities",
            ),
        ],
        className="anomaly-filters",
    )


def filter_anomalies(
    anomalies: pd.DataFrame, types: list[str] | None, severities: list[str] | None
) -> pd.DataFrame:
    """The rows of an ``anomalies_frame`` whose type is in ``types`` and severity in ``severities`` (an
    empty or missing selection keeps every value)."""
    keep = pd.Series(True, index=anomalies.index)
    if types:
        keep &= anomalies["anomaly_type"].isin(types)
    if severities:
        keep &= anomalies["severity"].isin(severities)
    return anomalies[keep]


def anomalies_table(symbol: str, anomalies: pd.DataFrame) -> html.Div | html.Table:
    """The newest anomalies of the shown range, or a line saying there are none."""
    if anomalies.empty:
        return html.Div(f"No anomalies for {symbol} in this range", className="empty")
    shown = anomalies.head(ANOMALY_ROWS)
    zone = "New York" if is_stock(symbol) else "UTC"
    times = display_times(shown["event_time"], symbol).dt.strftime("%Y-%m-%d %H:%M")
    head = html.Thead(
        html.Tr([html.Th(t) for t in (f"Bar ({zone})", "Interval", "Type", "Severity", "Value", "Threshold")])
    )
    rows = [
        html.Tr(
            [
                html.Td(time),
                html.Td(row.interval),
                html.Td(row.anomaly_type.replace("_", " ")),
                html.Td(html.Span(row.severity, className=f"badge {row.severity}")),
                html.Td(f"{row.value:,.4g}{VALUE_UNITS.get(row.anomaly_type, '')}", className="num"),
                html.Td(f"{row.threshold:,.4g}{VALUE_UNITS.get(row.anomaly_type, '')}", className="num"),
            ]
        )
        for time, row in zip(times, shown.itertuples(), strict=True)
    ]
    return html.Table([head, html.Tbody(rows)], className="table")
