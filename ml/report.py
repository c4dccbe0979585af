"""Plots and files of an :class:`ml.evaluate.EvaluationReport` (plotly; one self-contained HTML file).

Files written by :func:`write_report` into the output directory:

- ``metrics.csv``: the metrics table (one row per series and predictor);
- ``predictions.csv``: every out-of-sample prediction of the walk-forward;
- ``skipped.csv``: series that could not be evaluated, with the reason;
- ``summary.txt``: the table as text and one plain verdict per series;
- ``report.html``: the figures of :func:`figures` (plotly.js embedded, works offline).
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ml.evaluate import PREDICTORS, EvaluationReport
from tickflow.intervals import Interval


def comparison_figure(report: EvaluationReport) -> go.Figure:
    """RMSE and MAE of the next close relative to the naive baseline, per series and predictor."""
    metrics = report.metrics.assign(series=report.metrics["symbol"] + " " + report.metrics["interval"])
    fig = make_subplots(rows=1, cols=2, subplot_titles=("RMSE / naive RMSE", "MAE / naive MAE"))
    naive_mae = metrics[metrics["predictor"] == "naive"].set_index("series")["mae_close"]
    for name in PREDICTORS:
        rows = metrics[metrics["predictor"] == name]
        fig.add_bar(x=rows["series"], y=rows["rmse_vs_naive"], name=name, legendgroup=name, row=1, col=1)
        fig.add_bar(
            x=rows["series"],
            y=rows["mae_close"].to_numpy() / naive_mae.loc[rows["series"]].to_numpy(),
            name=name,
            legendgroup=name,
            showlegend=False,
            row=1,
            col=2,
        )
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey")
    fig.update_layout(
        title="Walk-forward error relative to the naive forecast (< 1 is better)", barmode="group"
    )
    return fig


def series_figure(predictions: pd.DataFrame, symbol: str, interval: str) -> go.Figure:
    """Actual next close vs the model's prediction and band, and the naive forecast, over time."""
    rows = predictions[(predictions["symbol"] == symbol) & (predictions["interval"] == interval)]
    when = rows["window_start"] + pd.Timedelta(minutes=Interval.parse(interval).minutes)
    predicted = rows["base_close"] * (1.0 + rows["model_return"])
    fig = go.Figure()
    fig.add_scatter(x=when, y=rows["upper"], line={"width": 0}, showlegend=False, hoverinfo="skip")
    fig.add_scatter(
        x=when,
        y=rows["lower"],
        fill="tonexty",
        line={"width": 0},
        fillcolor="rgba(99,110,250,0.2)",
        name="model band",
    )
    fig.add_scatter(x=when, y=rows["actual_close"], name="actual close", line={"color": "black"})
    fig.add_scatter(x=when, y=predicted, name="model", line={"color": "rgb(99,110,250)"})
    fig.add_scatter(x=when, y=rows["base_close"], name="naive (last close)", line={"dash": "dot"})
    fig.update_layout(
        title=f"{symbol} {interval}: out-of-sample next-close predictions",
        xaxis_title="bar start (UTC)",
        yaxis_title="close (quote currency)",
    )
    return fig


def figures(report: EvaluationReport) -> list[go.Figure]:
    """The comparison figure followed by one figure per evaluated series (empty when none)."""
    if report.metrics.empty:
        return []
    pairs = report.metrics[["symbol", "interval"]].drop_duplicates().itertuples(index=False)
    return [comparison_figure(report)] + [series_figure(report.predictions, s, i) for s, i in pairs]


def write_report(report: EvaluationReport, out_dir: Path) -> dict[str, Path]:
    """Write the files listed in the module docstring into ``out_dir`` (created); return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        name: out_dir / name
        for name in ("metrics.csv", "predictions.csv", "skipped.csv", "summary.txt", "report.html")
    }
    report.metrics.to_csv(paths["metrics.csv"], index=False)
    report.predictions.to_csv(paths["predictions.csv"], index=False)
    report.skipped.to_csv(paths["skipped.csv"], index=False)
    paths["summary.txt"].write_text(report.to_text(), encoding="utf-8")
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures(report))]
    body = "\n".join(parts) or "<p>No series had enough bars to evaluate.</p>"
    summary = html.escape(report.to_text())
    paths["report.html"].write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Tickflow ML evaluation</title></head>"
        f"<body><h1>Tickflow ML evaluation</h1><pre>{summary}</pre>{body}</body></html>",
        encoding="utf-8",
    )
    return paths
