"""Pure figure builders: bars / indicators / predictions / anomalies DataFrames in, a plotly Figure out.

The market figure has four panels sharing one time axis: candles with the bars' VWAP, Bollinger Bands
(20, 2), predictions and anomaly markers; volume; RSI 14 with its 70/30 lines; MACD (12, 26, 9) line,
signal and histogram. Indicator values are the pipeline's (``streaming_jobs.indicators.formulas``), read
from the API - nothing is recomputed here. Candles are drawn at their ``window_start``.

Times are shown as wall-clock time without offset: UTC for crypto pairs (``BTC-USD``), New York time for
stock symbols (no ``-``, e.g. ``AAPL``), whose closed-market hours (nights, weekends) are hidden with
``rangebreaks``.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.frames import predictions_frame
from tickflow.intervals import Interval

BACKGROUND: Final = "#131722"
GRID: Final = "#232838"
TEXT: Final = "#c9ccd6"
MUTED: Final = "#787b86"
UP: Final = "#26a69a"
DOWN: Final = "#ef5350"
VWAP: Final = "#f5a623"
BANDS: Final = "#5b9cf6"
PREDICTION: Final = "#c77dff"
MACD_LINE: Final = "#2962ff"
SIGNAL_LINE: Final = "#ff9800"
RSI_LINE: Final = "#b388ff"
SEVERITY_COLORS: Final = {"info": "#5b9cf6", "warning": "#f5a623", "critical": "#ef5350"}
FONT: Final = "Inter, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"

STOCK_TIMEZONE: Final = "America/New_York"
RSI_WINDOW: Final = 14
MACD_BARS: Final = 26 + 9 - 1
"""Bars before the first MACD signal value (slow EMA 26, then a 9-bar EMA of the line)."""

PANELS: Final = ("price", "volume", "rsi", "macd")
BAR_FILL: Final = 0.7
"""Fraction of an interval a volume or histogram bar fills."""
ROW_HEIGHTS: Final = (0.56, 0.12, 0.14, 0.18)


def is_stock(symbol: str) -> bool:
    """True for a stock symbol (``AAPL``); crypto pairs have a quote part (``BTC-USD``)."""
    return "-" not in symbol


def display_times(times: pd.Series, symbol: str) -> pd.Series:
    """UTC timestamps as naive wall-clock times of the chart: UTC for crypto, New York for stocks."""
    zone = STOCK_TIMEZONE if is_stock(symbol) else "UTC"
    return times.dt.tz_convert(zone).dt.tz_localize(None)


def rangebreaks(symbol: str) -> list[dict[str, Any]]:
    """Hidden x ranges: weekends and 16:00-09:30 New York time for stocks, none for 24/7 crypto."""
    if not is_stock(symbol):
        return []
    return [{"bounds": ["sat", "mon"]}, {"bounds": [16, 9.5], "pattern": "hour"}]


def _style(fig: go.Figure, revision: str | None) -> go.Figure:
    fig.update_layout(
        template="plotly_dark",
        paper_bgcolor=BACKGROUND,
        plot_bgcolor=BACKGROUND,
        font={"family": FONT, "color": TEXT, "size": 12},
        margin={"l": 12, "r": 8, "t": 44, "b": 28},  # a legend taller than the top margin draws NaN paths
        uirevision=revision,
        hoverlabel={"bgcolor": "#1e222d", "bordercolor": "#363a45", "font": {"family": FONT, "size": 12}},
    )
    return fig


def empty_figure(message: str, revision: str | None = None) -> go.Figure:
    """A blank chart that says what is missing (e.g. ``no bars yet for ETH-USD 5m``)."""
    fig = go.Figure()
    _note(fig, message, 0.5, 0.5, size=18, ref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _style(fig, revision)


def _note(
    fig: go.Figure,
    text: str,
    x: float,
    y: float,
    *,
    size: int,
    ref: Literal["paper", "domain"] = "domain",
    row: int | None = None,
    color: str = MUTED,
    **position: Any,
) -> None:
    """Text without an arrow at (``x``, ``y``), fractions of the whole figure (``ref="paper"``) or of a
    panel (``"domain"``: panel ``row``, the first when None); ``size`` in px; ``position``: further
    ``add_annotation`` placement (``xanchor``, ``yanchor``, ``yshift``)."""
    axes = {"xref": "paper", "yref": "paper"} if ref == "paper" else {"xref": "x domain", "yref": "y domain"}
    panel = {} if row is None else {"row": row, "col": 1}
    fig.add_annotation(
        text=text, x=x, y=y, showarrow=False, font={"size": size, "color": color}, **axes, **panel, **position
    )


def _label(fig: go.Figure, row: int, text: str) -> None:
    _note(fig, text, 0.005, 0.98, size=11, row=row, xanchor="left", yanchor="top")


def _placeholder(fig: go.Figure, row: int, text: str) -> None:
    """A message in the middle of an empty panel. plotly drops axes that no trace uses (and then reads
    the panel's annotations in the price axis' units), so an empty trace keeps the panel."""
    fig.add_trace(go.Scatter(x=[], y=[], name=f"{PANELS[row - 1]} placeholder", showlegend=False), row, 1)
    fig.update_yaxes(showticklabels=False, row=row, col=1)
    _note(fig, text, 0.5, 0.5, size=13, row=row)


def _band(
    fig: go.Figure,
    x: pd.Series,
    upper: pd.Series,
    lower: pd.Series,
    names: tuple[str, str],
    group: str,
    line: dict[str, Any],
    fillcolor: str,
    legend: bool = True,
) -> None:
    """A shaded band on the price panel: the ``upper`` edge, then the ``lower`` one filled up to it (prices);
    ``names`` of the two traces, the lower one in the legend when ``legend``; ``group`` their legend group."""
    edge = {"mode": "lines", "line": line, "legendgroup": group, "hoverinfo": "skip"}
    fig.add_trace(go.Scatter(x=x, y=upper, name=names[0], showlegend=False, **edge), 1, 1)
    fig.add_trace(
        go.Scatter(
            x=x, y=lower, name=names[1], fill="tonexty", fillcolor=fillcolor, showlegend=legend, **edge
        ),
        1,
        1,
    )


def _price_panel(
    fig: go.Figure, x: pd.Series, bars: pd.DataFrame, ind: pd.DataFrame, period: pd.Timedelta
) -> None:
    if ind["bb_upper"].notna().any():
        bollinger = ("BB upper", "Bollinger (20, 2)")
        line = {"color": BANDS, "width": 1}
        _band(fig, x, ind["bb_upper"], ind["bb_lower"], bollinger, "bb", line, "rgba(91, 156, 246, 0.07)")
        fig.add_trace(
            go.Scatter(
                x=x,
                y=ind["bb_middle"],
                name="BB middle",
                mode="lines",
                line={"color": BANDS, "width": 1, "dash": "dot"},
                legendgroup="bb",
                showlegend=False,
                hoverinfo="skip",
            ),
            1,
            1,
        )
    fig.add_trace(
        go.Candlestick(
            x=x,
            open=bars["open"],
            high=bars["high"],
            low=bars["low"],
            close=bars["close"],
            name="OHLC",
            increasing={"line": {"color": UP, "width": 1}, "fillcolor": UP},
            decreasing={"line": {"color": DOWN, "width": 1}, "fillcolor": DOWN},
            whiskerwidth=0,
        ),
        1,
        1,
    )
    if len(bars) == 1:
        # plotly sizes candles by the spacing of the candle positions on the axis: with a single candle it
        # draws a zero-width one. An invisible candle one interval earlier gives the spacing.
        close = bars["close"].iloc[0]
        spacer = {"open": [close], "high": [close], "low": [close], "close": [close]}
        fig.add_trace(
            go.Candlestick(
                x=[x.iloc[0] - period], name="spacer", opacity=0, showlegend=False, hoverinfo="skip", **spacer
            ),
            1,
            1,
        )
    fig.add_trace(
        go.Scatter(x=x, y=bars["vwap"], name="VWAP", mode="lines", line={"color": VWAP, "width": 1.4}), 1, 1
    )


def _predictions(fig: go.Figure, predictions: pd.DataFrame, symbol: str) -> None:
    """Predicted closes (dotted) inside their shaded band (``lower``..``upper``)."""
    if predictions.empty:
        return
    x = display_times(predictions["window_start"], symbol)
    names = ("Prediction upper", "Prediction band")
    fill = "rgba(199, 125, 255, 0.13)"
    _band(fig, x, predictions["upper"], predictions["lower"], names, "prediction", {"width": 0}, fill, False)
    fig.add_trace(
        go.Scatter(
            x=x,
            y=predictions["predicted_close"],
            name="Predicted close",
            mode="lines+markers",
            line={"color": PREDICTION, "width": 1.3, "dash": "dot"},
            marker={"size": 6, "symbol": "diamond"},
            legendgroup="prediction",
            customdata=predictions[["lower", "upper", "model_version"]],
            hovertemplate="%{y:,.6g} (%{customdata[0]:,.6g} – %{customdata[1]:,.6g}) %{customdata[2]}",
        ),
        1,
        1,
    )


def _anomaly_markers(fig: go.Figure, bars: pd.DataFrame, anomalies: pd.DataFrame, symbol: str) -> None:
    """Triangles just above the high of each bar with an anomaly, coloured by severity."""
    if anomalies.empty:
        return
    marks = anomalies.merge(
        bars[["window_start", "high"]], left_on="event_time", right_on="window_start", how="inner"
    )
    if marks.empty:
        return
    lift = float((bars["high"] - bars["low"]).median()) * 0.6
    fig.add_trace(
        go.Scatter(
            x=display_times(marks["event_time"], symbol),
            y=marks["high"] + lift,
            name="Anomaly",
            mode="markers",
            marker={
                "symbol": "triangle-down",
                "size": 9,
                "color": [SEVERITY_COLORS.get(s, MUTED) for s in marks["severity"]],
            },
            text=[
                f"{row.anomaly_type.replace('_', ' ')} ({row.severity}): {row.value:.4g}, "
                f"threshold {row.threshold:.4g}"
                for row in marks.itertuples()
            ],
            hovertemplate="%{text}<extra></extra>",
        ),
        1,
        1,
    )


def _panel_line(
    fig: go.Figure, row: int, x: pd.Series, y: pd.Series, name: str, color: str, width: float
) -> None:
    """A line of a lower panel (no legend entry)."""
    fig.add_trace(
        go.Scatter(
            x=x, y=y, name=name, mode="lines", line={"color": color, "width": width}, showlegend=False
        ),
        row,
        1,
    )


def _panel_bars(
    fig: go.Figure,
    row: int,
    x: pd.Series,
    y: pd.Series,
    up: pd.Series,
    name: str,
    opacity: float,
    bar_width: float,
) -> None:
    """Bars of a lower panel (no legend entry), in the up colour where ``up`` is true, else the down one."""
    fig.add_trace(
        go.Bar(
            x=x,
            y=y,
            width=bar_width,
            name=name,
            marker={"color": up.map({True: UP, False: DOWN}).tolist(), "opacity": opacity},
            showlegend=False,
        ),
        row,
        1,
    )


def _volume_panel(fig: go.Figure, x: pd.Series, bars: pd.DataFrame, bar_width: float) -> None:
    rising = bars["close"] >= bars["open"]
    _panel_bars(fig, 2, x, bars["volume"], rising, "Volume", 0.55, bar_width)
    _label(fig, 2, "Volume")


def _rsi_panel(fig: go.Figure, x: pd.Series, ind: pd.DataFrame, missing: str | None) -> None:
    # Paper-wide shapes on the RSI axis (``add_hline``'s axis-domain refs draw NaN paths with one bar).
    band = {"xref": "paper", "x0": 0, "x1": 1, "yref": "y3", "layer": "below"}
    fig.add_shape(type="rect", y0=30, y1=70, fillcolor="rgba(179, 136, 255, 0.06)", line_width=0, **band)
    for level in (70, 30):
        fig.add_shape(
            type="line", y0=level, y1=level, line={"color": MUTED, "width": 1, "dash": "dash"}, **band
        )
    fig.update_yaxes(range=[0, 100], tickvals=[30, 50, 70], row=3, col=1)
    _label(fig, 3, f"RSI {RSI_WINDOW}")
    if ind["rsi_14"].notna().any():
        _panel_line(fig, 3, x, ind["rsi_14"], "RSI 14", RSI_LINE, 1.4)
    else:
        _placeholder(fig, 3, missing or f"RSI {RSI_WINDOW} warming up: needs {RSI_WINDOW + 1} bars")


def _macd_panel(
    fig: go.Figure, x: pd.Series, ind: pd.DataFrame, missing: str | None, bar_width: float
) -> None:
    _label(fig, 4, "MACD 12 26 9")
    if not ind["macd"].notna().any():
        _placeholder(fig, 4, missing or "MACD warming up: needs 26 bars")
        return
    hist = ind["macd_hist"]
    _panel_bars(fig, 4, x, hist, hist >= 0, "Histogram", 0.6, bar_width)
    _panel_line(fig, 4, x, ind["macd"], "MACD", MACD_LINE, 1.4)
    _panel_line(fig, 4, x, ind["macd_signal"], "Signal", SIGNAL_LINE, 1.2)


def market_figure(
    symbol: str,
    interval: str,
    bars: pd.DataFrame,
    indicators: pd.DataFrame,
    predictions: pd.DataFrame | None = None,
    anomalies: pd.DataFrame | None = None,
    revision: str | None = None,
    prediction_note: str | None = None,
) -> go.Figure:
    """The four-panel market chart of ``symbol``/``interval``.

    Args:
        bars: a ``dashboard.frames.bars_frame`` (oldest first); one candle per row.
        indicators: an ``indicators_frame``; matched to bars by ``window_start`` (bars without a row show
            gaps). Empty: the indicator panels say no indicators exist yet.
        predictions: a ``predictions_frame`` drawn as predicted closes with their band (optional).
        anomalies: an ``anomalies_frame``; those of this interval on a shown bar get a marker (optional).
        revision: plotly ``uirevision``: zoom and legend choices survive updates with the same value.
        prediction_note: the model and its score, written beside the predictions (top left of the price
            panel) when there are predictions.

    Returns:
        The figure; an :func:`empty_figure` ("no bars yet for ETH-USD 5m") when ``bars`` is empty.
    """
    if bars.empty:
        return empty_figure(f"No bars yet for {symbol} {interval}", revision)
    x = display_times(bars["window_start"], symbol)
    ind = bars[["window_start"]].merge(indicators.drop(columns=["close"]), on="window_start", how="left")
    missing = None if not indicators.empty else f"no indicators yet for {symbol} {interval}"
    fig = make_subplots(
        rows=len(PANELS), cols=1, shared_xaxes=True, vertical_spacing=0.018, row_heights=list(ROW_HEIGHTS)
    )
    period = pd.Timedelta(minutes=Interval.parse(interval).minutes)
    bar_width = period.total_seconds() * 1000 * BAR_FILL  # bar widths on a date axis are in ms
    predictions = predictions if predictions is not None else predictions_frame([])
    _price_panel(fig, x, bars, ind, period)
    _predictions(fig, predictions, symbol)
    if anomalies is not None:
        _anomaly_markers(fig, bars, anomalies[anomalies["interval"] == interval], symbol)
    _volume_panel(fig, x, bars, bar_width)
    _rsi_panel(fig, x, ind, missing)
    _macd_panel(fig, x, ind, missing, bar_width)
    _style(fig, revision)
    fig.update_layout(
        hovermode="x unified",
        bargap=0.2,
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom", "bgcolor": "rgba(0,0,0,0)"},
    )
    last = x.iloc[-1]
    if not predictions.empty:
        last = max(last, display_times(predictions["window_start"], symbol).max())
    fig.update_xaxes(
        type="date",  # also for panels without traces, or their shared axis breaks
        range=[x.iloc[0] - period * 0.6, last + period * 0.6],
        gridcolor=GRID,
        linecolor=GRID,
        rangeslider_visible=False,
        rangebreaks=rangebreaks(symbol),
        showspikes=True,
        spikemode="across",
        spikesnap="cursor",
        spikethickness=1,
        spikecolor=MUTED,
        spikedash="dot",
    )
    # The time zone as an annotation, not an axis title: plotly.react leaves a title of an axis without
    # traces on screen when the next figure has no such axis.
    zone = "New York" if is_stock(symbol) else "UTC"
    _note(fig, f"time: {zone}", 1, 1, size=11, ref="paper", xanchor="right", yanchor="bottom", yshift=4)
    if prediction_note and not predictions.empty:
        note = f"Prediction: {prediction_note}"
        _note(fig, note, 0, 1, size=11, color=PREDICTION, xanchor="left", yanchor="top")
    fig.update_yaxes(gridcolor=GRID, side="right", zeroline=False, tickfont={"size": 11})
    fig.update_yaxes(tickformat=",", row=1, col=1)
    fig.update_yaxes(tickformat="~s", row=2, col=1)
    return fig
