"""Walk-forward evaluation of the model against naive baselines, per symbol and interval.

Walk-forward (expanding window by default, rolling with ``max_train_rows``): the labelled rows are kept in
time order; the first ``initial`` rows are training-only, the rest is cut into ``folds`` consecutive test
blocks. For each block the full training procedure (:func:`ml.model.train`, including its own time-ordered
early-stopping split) runs on the rows before the block only, and predicts the block. The last training
row's target is the close of the block's first base bar, which is known when that bar is final, so no
prediction uses information from after its base bar.

Predictors compared on the same rows:

- ``model``: XGBoost (:mod:`ml.model`).
- ``naive``: last close, i.e. a zero return (the random-walk forecast; "last close" and "zero return" are
  the same forecast, once in price and once in return terms).
- ``drift``: the mean next-bar return of the training rows.

Metrics (errors of the predicted next close, quote currency, and of the return, basis points):
``rmse_close``, ``mae_close``, ``rmse_return_bp``, ``mae_return_bp``; ``directional_accuracy`` = share of
rows with a non-zero actual and predicted return whose signs agree (NaN for ``naive``, which never calls
a direction); ``band_coverage`` = share of actual closes inside the model's band; ``rmse_vs_naive`` =
``rmse_close / rmse_close(naive)`` (< 1 means better than doing nothing); ``dm_pvalue`` = two-sided
p-value of the Diebold-Mariano test (Diebold & Mariano, 1995, squared-error loss, horizon 1, normal
approximation) that the predictor and ``naive`` are equally accurate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Final

import numpy as np
import pandas as pd

from ml.features import Dataset, make_dataset
from ml.model import MIN_TRAIN_ROWS, InsufficientDataError, TrainParams, train

PREDICTORS: Final = ("model", "naive", "drift")
METRIC_COLUMNS: Final = (
    "symbol",
    "interval",
    "predictor",
    "n",
    "rmse_close",
    "mae_close",
    "rmse_return_bp",
    "mae_return_bp",
    "directional_accuracy",
    "band_coverage",
    "rmse_vs_naive",
    "dm_pvalue",
)


@dataclass(frozen=True)
class WalkForward:
    """Walk-forward settings.

    Attributes:
        folds: test blocks (fewer when there are fewer test rows).
        initial_rows: training-only rows before the first block; default ``max(MIN_TRAIN_ROWS, half)``.
        max_train_rows: rolling window length; ``None`` = expanding window.
        params: training settings used on every fold.
    """

    folds: int = 5
    initial_rows: int | None = None
    max_train_rows: int | None = None
    params: TrainParams = field(default_factory=TrainParams)


def walk_forward(dataset: Dataset, symbol: str, config: WalkForward | None = None) -> pd.DataFrame:
    """Out-of-sample predictions of every predictor on the test blocks of ``dataset``.

    Returns:
        One row per test bar: ``window_start`` (base bar, UTC), ``fold``, ``base_close``,
        ``actual_close`` (quote currency), ``actual_return``, ``model_return``, ``naive_return``,
        ``drift_return`` (unitless), ``lower``/``upper`` (the model's band, quote currency).

    Raises:
        InsufficientDataError: too few labelled rows for a training block of ``MIN_TRAIN_ROWS`` rows plus
            at least one test row.
    """
    config = config or WalkForward()
    data = dataset.labelled()
    n = len(data)
    initial = config.initial_rows or max(MIN_TRAIN_ROWS, n // 2)
    if initial < MIN_TRAIN_ROWS or n <= initial:
        raise InsufficientDataError(
            f"{symbol} {dataset.interval.name}: {n} labelled bars; walk-forward needs more than "
            f"{max(initial, MIN_TRAIN_ROWS)}"
        )
    folds = min(config.folds, n - initial)
    bounds = np.linspace(initial, n, folds + 1).round().astype(int)
    blocks = []
    for fold, (lo, hi) in enumerate(pairwise(bounds)):
        first = 0 if config.max_train_rows is None else max(0, lo - config.max_train_rows)
        history = data.take(slice(first, lo))
        test = data.take(slice(lo, hi))
        predicted = train(history, symbol, config.params).predict(test.features, test.close)
        blocks.append(
            pd.DataFrame(
                {
                    "fold": fold,
                    "base_close": test.close,
                    "actual_close": test.next_close,
                    "actual_return": test.target_return,
                    "model_return": predicted["predicted_return"],
                    "naive_return": 0.0,
                    "drift_return": float(history.target_return.mean()),
                    "lower": predicted["lower"],
                    "upper": predicted["upper"],
                }
            )
        )
    return pd.concat(blocks).rename_axis("window_start").reset_index()


def _dm_pvalue(loss_a: np.ndarray, loss_b: np.ndarray) -> float:
    d = loss_a - loss_b
    if len(d) < 2:
        return math.nan
    spread = float(np.std(d, ddof=1))
    if spread == 0.0:
        return math.nan if float(np.mean(d)) == 0.0 else 0.0
    statistic = float(np.mean(d)) / (spread / math.sqrt(len(d)))
    return math.erfc(abs(statistic) / math.sqrt(2.0))


def score(predictions: pd.DataFrame) -> pd.DataFrame:
    """Metrics (module docstring) of every predictor on the rows of :func:`walk_forward`.

    Returns:
        One row per predictor, columns :data:`METRIC_COLUMNS` without symbol and interval.
    """
    actual = predictions["actual_return"].to_numpy()
    base = predictions["base_close"].to_numpy()
    naive_loss = np.square(actual)
    rows = []
    for name in PREDICTORS:
        predicted = predictions[f"{name}_return"].to_numpy()
        error = predicted - actual
        error_close = base * error
        calls = (actual != 0) & (predicted != 0)
        rows.append(
            {
                "predictor": name,
                "n": len(predictions),
                "rmse_close": float(np.sqrt(np.mean(np.square(error_close)))),
                "mae_close": float(np.mean(np.abs(error_close))),
                "rmse_return_bp": 1e4 * float(np.sqrt(np.mean(np.square(error)))),
                "mae_return_bp": 1e4 * float(np.mean(np.abs(error))),
                "directional_accuracy": float(np.mean(np.sign(predicted[calls]) == np.sign(actual[calls])))
                if calls.any()
                else math.nan,
                "band_coverage": float(
                    predictions["actual_close"].between(predictions["lower"], predictions["upper"]).mean()
                )
                if name == "model"
                else math.nan,
                "dm_pvalue": math.nan if name == "naive" else _dm_pvalue(np.square(error), naive_loss),
            }
        )
    table = pd.DataFrame(rows)
    naive_rmse = float(table.loc[table["predictor"] == "naive", "rmse_close"].iloc[0])
    table["rmse_vs_naive"] = table["rmse_close"] / naive_rmse if naive_rmse > 0 else math.nan
    return table


@dataclass(frozen=True)
class EvaluationReport:
    """Walk-forward results of several series.

    Attributes:
        metrics: columns :data:`METRIC_COLUMNS`, one row per series and predictor.
        predictions: the rows of :func:`walk_forward` with ``symbol`` and ``interval`` columns added.
        skipped: ``symbol``, ``interval``, ``reason`` of series that could not be evaluated.
        band: the nominal level of the model's band (e.g. 0.9), against which ``band_coverage`` is read.
    """

    metrics: pd.DataFrame
    predictions: pd.DataFrame
    skipped: pd.DataFrame
    band: float = 0.9

    def verdicts(self) -> list[str]:
        """One plain sentence per evaluated series: does the model beat the naive baseline?"""
        lines = []
        for (symbol, interval), group in self.metrics.groupby(["symbol", "interval"], sort=False):
            model = group.set_index("predictor").loc["model"]
            naive = group.set_index("predictor").loc["naive"]
            beats = model["rmse_close"] < naive["rmse_close"]
            significant = model["dm_pvalue"] < 0.05
            lines.append(
                f"{symbol} {interval}: model RMSE {model['rmse_close']:.6g}"
                f" vs naive {naive['rmse_close']:.6g}"
                f" (ratio {model['rmse_vs_naive']:.3f}, MAE {model['mae_close']:.6g} vs"
                f" {naive['mae_close']:.6g}, direction {model['directional_accuracy']:.1%},"
                f" n={int(model['n'])}, DM p={model['dm_pvalue']:.3g},"
                f" band coverage {model['band_coverage']:.1%} vs nominal {self.band:.0%}) -> "
                + (
                    ("beats the naive baseline" if beats else "does NOT beat the naive baseline")
                    + (" (significant at 5%)" if significant else " (not significant at 5%)")
                )
            )
        lines.extend(f"{r.symbol} {r.interval}: skipped: {r.reason}" for r in self.skipped.itertuples())
        return lines

    def to_text(self) -> str:
        """The metrics table and the verdicts as plain text."""
        with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 5):
            table = self.metrics.to_string(index=False) if len(self.metrics) else "(no series evaluated)"
        return table + "\n\n" + "\n".join(self.verdicts()) + "\n"


SeriesLoader = Callable[[str, str], tuple[pd.DataFrame, pd.DataFrame | None]]


def evaluate(
    series: Iterable[tuple[str, str]],
    load: SeriesLoader,
    config: WalkForward | None = None,
    progress: Callable[[Iterable[tuple[str, str]]], Iterable[tuple[str, str]]] = iter,
) -> EvaluationReport:
    """Walk-forward evaluation of every ``(symbol, interval)`` in ``series``.

    Args:
        series: the symbol/interval pairs.
        load: returns ``(bars, indicators or None)`` of a pair (e.g. from :mod:`ml.data`).
        config: walk-forward settings.
        progress: wraps the pair iterable (e.g. ``tqdm``).

    Returns:
        The report; a series with too little data is listed in ``skipped`` with the reason.
    """
    metrics, predictions, skipped = [], [], []
    for symbol, interval in progress(series):
        bars, indicators = load(symbol, interval)
        try:
            rows = walk_forward(make_dataset(bars, interval, indicators), symbol, config)
        except ValueError as exc:  # InsufficientDataError, or bars that cannot be put on a grid
            skipped.append({"symbol": symbol, "interval": interval, "reason": str(exc)})
            continue
        predictions.append(rows.assign(symbol=symbol, interval=interval))
        metrics.append(score(rows).assign(symbol=symbol, interval=interval))
    return EvaluationReport(
        metrics=pd.concat(metrics, ignore_index=True)[list(METRIC_COLUMNS)]
        if metrics
        else pd.DataFrame(columns=list(METRIC_COLUMNS)),
        predictions=pd.concat(predictions, ignore_index=True) if predictions else pd.DataFrame(),
        skipped=pd.DataFrame(skipped, columns=["symbol", "interval", "reason"]),
        band=(config or WalkForward()).params.band,
    )
