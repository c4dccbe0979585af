"""What one refresh of the page shows: the data of a (symbol, interval, time range) read through the API,
the market figure, the anomalies, and notices about anything that could not be read.

Time ranges are anchored at the newest bar (``1H`` = the hour up to the newest bar), so a replayed day
and a live stream look alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import pandas as pd
import plotly.graph_objects as go

from dashboard.figures import empty_figure, market_figure
from dashboard.frames import anomalies_frame, bars_frame, indicators_frame, predictions_frame
from dashboard.http_cache import Fetched, FetchError
from dashboard.source import MAX_PAGE, TickflowApi
from tickflow.intervals import Interval

RANGES: Final = {"1H": 60, "6H": 360, "1D": 1440, "1W": 10080, "Max": None}
"""Time-range choices: minutes up to the newest bar (None: as many bars as one API page holds)."""
DEFAULT_RANGE: Final = "6H"


@dataclass
class ChartView:
    """One refresh: the figure and what it was built from.

    ``bars`` are the bars shown (a ``bars_frame``), ``anomalies`` an ``anomalies_frame``, ``notices``
    human-readable problems (API down, a read that failed), ``received_at`` when the bars were received
    from the API (Unix s; None when nothing could be read) and ``stale`` whether they are a cached copy.
    """

    figure: go.Figure
    bars: pd.DataFrame
    anomalies: pd.DataFrame
    notices: list[str] = field(default_factory=list)
    received_at: float | None = None
    stale: bool = False


def bars_needed(range_key: str, interval: str) -> int:
    """Bars covering ``range_key`` at ``interval`` (at most one API page).

    Raises:
        KeyError: unknown range; ValueError: unknown interval.
    """
    minutes = RANGES[range_key]
    if minutes is None:
        return MAX_PAGE
    return min(MAX_PAGE, math.ceil(minutes / Interval.parse(interval).minutes))


def within_range(bars: pd.DataFrame, range_key: str) -> pd.DataFrame:
    """The bars starting less than the range before the newest bar's start plus one interval, i.e. the
    range's worth of bars up to and including the newest."""
    minutes = RANGES[range_key]
    if minutes is None or bars.empty:
        return bars
    cutoff = bars["window_start"].iloc[-1] - pd.Timedelta(minutes=minutes)
    return bars[bars["window_start"] > cutoff].reset_index(drop=True)


def stale_notice(fetched: Fetched) -> str:
    """``API unreachable (ConnectError ...): showing data received at 16:59:58 UTC.``"""
    received = datetime.fromtimestamp(fetched.fetched_at, UTC).strftime("%H:%M:%S UTC")
    return f"API unreachable ({fetched.error}): showing data received at {received}; retrying."


def _optional(
    read: Callable[[], Fetched], empty: pd.DataFrame, what: str, notices: list[str]
) -> pd.DataFrame:
    """The frame of a secondary read; on failure an empty frame and a notice (the chart still shows)."""
    try:
        return read().data
    except FetchError as exc:
        notices.append(f"{what} unavailable: {exc.detail}")
        return empty


def prediction_summary(status: Mapping[str, Any]) -> str:
    """``model <version> · RMSE/naive 0.981 · band 88% (nominal 90%) · 40 bars scored`` of a series' entry in
    ``/api/v1/ml/status`` (the live walk-forward score, when some served predictions are scored)."""
    summary = f"model {status.get('model_version')}"
    if status.get("scored_bars"):
        ratio, coverage, band = status.get("rmse_vs_naive"), status.get("band_coverage"), status.get("band")
        if ratio is not None:
            summary += f" · RMSE/naive {ratio:.3f}"
        if coverage is not None and band is not None:
            summary += f" · band {coverage:.0%} (nominal {band:.0%})"
        summary += f" · {status['scored_bars']} bars scored"
    return summary


def series_status(api: TickflowApi, symbol: str, interval: str) -> Mapping[str, Any] | None:
    """The prediction service's status of ``symbol``/``interval``; None when unknown or not running."""
    try:
        fetched = api.ml_status()
    except FetchError:
        return None
    if not isinstance(fetched.data, dict) or not fetched.data.get("running"):
        return None
    wanted = (symbol, Interval.parse(interval).name)
    return next((s for s in fetched.data.get("series", []) if (s["symbol"], s["interval"]) == wanted), None)


def load_chart(api: TickflowApi, symbol: str, interval: str, range_key: str) -> ChartView:
    """Read bars, indicators, predictions (with the model's live score beside them) and anomalies of the range
    and build the figure.

    Never raises for API problems: an unreachable API gives the cached data with a notice, or an empty
    figure saying what is missing.
    """
    revision = f"{symbol}|{interval}|{range_key}"
    no_anomalies = anomalies_frame([])
    if not symbol:
        return ChartView(empty_figure("No symbol selected", revision), bars_frame([]), no_anomalies)
    try:
        fetched = api.bars(symbol, interval, bars_needed(range_key, interval))
    except FetchError as exc:
        reason = exc.detail if exc.status is not None else f"API unreachable ({exc.detail})"
        message = f"No bars for {symbol} {interval}: {reason}"
        return ChartView(empty_figure(message, revision), bars_frame([]), no_anomalies, [message])
    notices = [stale_notice(fetched)] if fetched.stale else []
    bars = within_range(fetched.data, range_key)
    if bars.empty:
        figure = empty_figure(f"No bars yet for {symbol} {interval}", revision)
        return ChartView(figure, bars, no_anomalies, notices, fetched.fetched_at, fetched.stale)
    start = bars["window_start"].iloc[0].to_pydatetime()
    indicators = _optional(
        lambda: api.indicators(symbol, interval, start), indicators_frame([]), "indicators", notices
    )
    predictions = _optional(
        lambda: api.predictions(symbol, interval, start), predictions_frame([]), "predictions", notices
    )
    anomalies = _optional(lambda: api.anomalies(symbol, start), no_anomalies, "anomalies", notices)
    status = series_status(api, symbol, interval) if not predictions.empty else None
    note = prediction_summary(status) if status is not None and status["state"] == "predicting" else None
    figure = market_figure(symbol, interval, bars, indicators, predictions, anomalies, revision, note)
    return ChartView(figure, bars, anomalies, notices, fetched.fetched_at, fetched.stale)
