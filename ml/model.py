"""XGBoost next-bar return model with early stopping and a residual-quantile confidence band.

Training (:func:`train`), on the labelled rows of a :class:`ml.features.Dataset` in time order:

1. the oldest ``1 - valid_fraction`` of the rows train a booster (squared error on the next-bar simple
   return) while the newest ``valid_fraction`` decide when to stop adding trees (early stopping; the
   split is by time, never shuffled);
2. the residuals ``actual - predicted`` on that validation block give the band: their empirical
   ``(1 - band) / 2`` and ``(1 + band) / 2`` quantiles (split-conformal style, cf. Vovk, Gammerman &
   Shafer, "Algorithmic Learning in a Random World", 2005) are added to every predicted return;
3. the final booster is refit on all rows with the number of trees early stopping chose, so the newest
   bars are part of the model.

The same procedure is what walk-forward evaluation (:mod:`ml.evaluate`) re-runs on every fold.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

import numpy as np
import pandas as pd
import xgboost as xgb

from ml.features import FEATURE_COLUMNS, Dataset

MIN_TRAIN_ROWS: Final = 30
"""Fewest labelled rows :func:`train` accepts (the validation block needs a handful of them)."""
MIN_VALID_ROWS: Final = 5


class InsufficientDataError(ValueError):
    """Too few labelled bars to train or evaluate a model; ``missing_bars``: how many more final bars are
    needed (None when unknown)."""

    def __init__(self, message: str, missing_bars: int | None = None) -> None:
        super().__init__(message)
        self.missing_bars = missing_bars


@dataclass(frozen=True)
class TrainParams:
    """XGBoost and split settings (defaults suit a few hundred to a few hundred thousand bars)."""

    n_estimators: int = 500
    learning_rate: float = 0.05
    max_depth: int = 3
    min_child_weight: float = 5.0
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 30
    valid_fraction: float = 0.2
    band: float = 0.9
    seed: int = 0
    threads: int = 1
    """XGBoost threads; bar data is small enough that one thread is fastest, and OpenMP threads spin
    badly on a busy machine (measured 15 s instead of 0.9 s for a walk-forward on 2 loaded cores)."""

    def booster_params(self) -> dict[str, Any]:
        """Parameters for :func:`xgboost.train`."""
        return {
            "objective": "reg:squarederror",
            "eval_metric": "rmse",
            "tree_method": "hist",
            "eta": self.learning_rate,
            "max_depth": self.max_depth,
            "min_child_weight": self.min_child_weight,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "lambda": self.reg_lambda,
            "seed": self.seed,
            "nthread": self.threads,
        }


@dataclass(frozen=True)
class ModelInfo:
    """What the registry stores next to a booster (JSON-serialisable).

    Times are ISO-8601 UTC strings; ``data_start``/``data_end`` are the window_start of the oldest/newest
    training row (whose target is the following bar's close); ``residual_low``/``residual_high`` are the
    band's return offsets (unitless); ``metrics`` hold validation RMSE/MAE of returns for the model and
    the zero-return baseline (``*_naive``); ``best_iteration`` is the 0-based index of the last tree.
    """

    symbol: str
    interval: str
    version: str
    created_at: str
    feature_columns: list[str]
    params: dict[str, Any]
    best_iteration: int
    n_train_rows: int
    n_valid_rows: int
    data_start: str
    data_end: str
    band: float
    residual_low: float
    residual_high: float
    metrics: dict[str, float]
    library_versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)


@dataclass(frozen=True)
class PriceModel:
    """A trained next-bar return model of one symbol/interval."""

    booster: xgb.Booster
    info: ModelInfo

    def predict_return(self, features: pd.DataFrame) -> np.ndarray:
        """Predicted next-bar simple returns (float64, one per row of ``features``).

        Raises:
            KeyError: ``features`` lacks a column the model was trained on.
        """
        threads = int(self.info.params.get("threads", 1))
        matrix = _matrix(features, self.info.feature_columns, threads)
        return self.booster.predict(matrix).astype("float64")

    def predict(self, features: pd.DataFrame, close: pd.Series) -> pd.DataFrame:
        """Next-close predictions with the band for every row of ``features``.

        Args:
            features: rows of :func:`ml.features.build_features` (index ``window_start`` of the base bar).
            close: the base bars' closes (quote currency), same index.

        Returns:
            Index = base bar ``window_start``; columns ``predicted_return`` (unitless),
            ``predicted_close``, ``lower``, ``upper``, ``base_close`` (quote currency).
        """
        predicted = self.predict_return(features)
        base = close.to_numpy(dtype="float64")
        return pd.DataFrame(
            {
                "predicted_return": predicted,
                "predicted_close": base * (1.0 + predicted),
                "lower": base * (1.0 + predicted + self.info.residual_low),
                "upper": base * (1.0 + predicted + self.info.residual_high),
                "base_close": base,
            },
            index=features.index,
        )


def library_versions() -> dict[str, str]:
    """Versions of the libraries a stored model depends on."""
    versions = {"python": platform.python_version()}
    for name in ("xgboost", "numpy", "pandas", "tickflow"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def _matrix(
    features: pd.DataFrame, columns: list[str], threads: int, label: pd.Series | None = None
) -> xgb.DMatrix:
    return xgb.DMatrix(
        features[columns].to_numpy(dtype="float32"),
        label=None if label is None else label.to_numpy(dtype="float64"),
        missing=np.nan,
        feature_names=columns,
        nthread=threads,
    )


def _labelled_matrix(data: Dataset, threads: int) -> xgb.DMatrix:
    return _matrix(data.features, list(FEATURE_COLUMNS), threads, data.target_return)


def _rmse(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(errors))))


def train(dataset: Dataset, symbol: str, params: TrainParams | None = None) -> PriceModel:
    """Train a model on the labelled rows of ``dataset`` (see the module docstring for the procedure).

    Args:
        dataset: features and target of ``symbol`` (rows without a target are ignored).
        symbol: the symbol, recorded in the model's info.
        params: XGBoost and split settings.

    Raises:
        InsufficientDataError: fewer than :data:`MIN_TRAIN_ROWS` labelled rows.
    """
    params = params or TrainParams()
    data = dataset.labelled()
    if len(data) < MIN_TRAIN_ROWS:
        raise InsufficientDataError(
            f"{symbol} {dataset.interval.name}: {len(data)} labelled bars, need at least {MIN_TRAIN_ROWS}",
            missing_bars=MIN_TRAIN_ROWS - len(data),
        )
    n_valid = max(MIN_VALID_ROWS, round(len(data) * params.valid_fraction))
    fit_part, valid_part = data.take(slice(None, -n_valid)), data.take(slice(-n_valid, None))
    booster_params = params.booster_params()
    valid_matrix = _labelled_matrix(valid_part, params.threads)
    probe = xgb.train(
        booster_params,
        _labelled_matrix(fit_part, params.threads),
        num_boost_round=params.n_estimators,
        evals=[(valid_matrix, "valid")],
        early_stopping_rounds=params.early_stopping_rounds,
        verbose_eval=False,
    )
    rounds = probe.best_iteration + 1
    actual = valid_part.target_return.to_numpy()
    residuals = actual - probe.predict(valid_matrix, iteration_range=(0, rounds))
    tail = (1.0 - params.band) / 2.0
    booster = xgb.train(
        booster_params, _labelled_matrix(data, params.threads), num_boost_round=rounds, verbose_eval=False
    )
    index = data.features.index
    created = datetime.now(UTC)
    info = ModelInfo(
        symbol=symbol,
        interval=dataset.interval.name,
        version=created.strftime("%Y%m%dT%H%M%S%fZ"),
        created_at=created.isoformat(),
        feature_columns=list(FEATURE_COLUMNS),
        params=asdict(params),
        best_iteration=probe.best_iteration,
        n_train_rows=len(fit_part),
        n_valid_rows=n_valid,
        data_start=index[0].isoformat(),
        data_end=index[-1].isoformat(),
        band=params.band,
        residual_low=float(np.quantile(residuals, tail)),
        residual_high=float(np.quantile(residuals, 1.0 - tail)),
        metrics={
            "valid_rmse_return": _rmse(residuals),
            "valid_mae_return": float(np.mean(np.abs(residuals))),
            "valid_rmse_return_naive": _rmse(actual),
            "valid_mae_return_naive": float(np.mean(np.abs(actual))),
        },
        library_versions=library_versions(),
    )
    return PriceModel(booster, info)
