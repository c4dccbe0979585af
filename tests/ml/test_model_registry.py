"""Training with early stopping and the band, and the on-disk registry round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost

from ml.features import FEATURE_COLUMNS, make_dataset
from ml.model import MIN_TRAIN_ROWS, InsufficientDataError, TrainParams, train
from ml.registry import INFO_FILE, MODEL_FILE, ModelNotFoundError, ModelRegistry
from tests.ml.synthetic import synthetic_bars


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(synthetic_bars("AR-USD", 800, phi=0.3, seed=5), "1m")


def test_training_stops_early_on_the_newest_rows_and_records_what_it_did(dataset) -> None:
    model = train(dataset, "AR-USD", TrainParams(n_estimators=2000, early_stopping_rounds=20))
    info = model.info
    assert info.n_train_rows + info.n_valid_rows == len(dataset) - 1
    assert info.n_valid_rows == round((len(dataset) - 1) * 0.2)
    assert 0 <= info.best_iteration < 2000 - 20, "early stopping should cut the 2,000 rounds"
    assert model.booster.num_boosted_rounds() == info.best_iteration + 1
    assert info.data_start == dataset.features.index[0].isoformat()
    assert info.data_end == dataset.features.index[-2].isoformat()  # newest labelled row
    assert info.residual_low < 0 < info.residual_high
    assert info.metrics["valid_rmse_return"] < info.metrics["valid_rmse_return_naive"]  # AR(1) is learnable
    assert info.feature_columns == list(FEATURE_COLUMNS)
    assert info.library_versions["xgboost"] == xgboost.__version__


def test_predictions_carry_the_band_around_the_implied_close(dataset) -> None:
    model = train(dataset, "AR-USD")
    out = model.predict(dataset.features.iloc[-50:], dataset.close.iloc[-50:])
    assert np.allclose(out["predicted_close"], out["base_close"] * (1 + out["predicted_return"]))
    assert (out["lower"] < out["predicted_close"]).all() and (out["predicted_close"] < out["upper"]).all()
    assert out["predicted_return"].std() > 0, "an AR(1) model should not predict a constant"


def test_too_few_bars_is_a_clear_error() -> None:
    short = make_dataset(synthetic_bars("X-USD", MIN_TRAIN_ROWS), "1m")  # one row short once labelled
    with pytest.raises(InsufficientDataError, match=f"need at least {MIN_TRAIN_ROWS}"):
        train(short, "X-USD")


def test_registry_round_trips_a_model(dataset, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    first = train(dataset, "AR-USD")
    second = train(dataset.take(slice(0, 600)), "AR-USD")
    path = registry.save(first)
    registry.save(second)
    assert (path / MODEL_FILE).is_file()
    stored = json.loads((path / INFO_FILE).read_text())
    assert {"feature_columns", "metrics", "data_start", "data_end", "library_versions", "created_at"} <= set(
        stored
    )
    assert registry.versions("AR-USD", "1m") == sorted([first.info.version, second.info.version])

    loaded = registry.load("AR-USD", "1m", first.info.version)
    assert loaded.info == first.info
    rows = dataset.features.iloc[-100:]
    pd.testing.assert_frame_equal(
        loaded.predict(rows, dataset.close.iloc[-100:]), first.predict(rows, dataset.close.iloc[-100:])
    )
    assert registry.load("AR-USD", "1min").info == second.info  # newest by default; topic-style interval
    assert [i.version for i in registry.latest()] == [second.info.version]
    with pytest.raises(FileExistsError):
        registry.save(first)
    with pytest.raises(ModelNotFoundError, match="no model version"):
        registry.load("AR-USD", "1m", "19700101T000000000000Z")
    with pytest.raises(ModelNotFoundError, match="no model registered"):
        registry.load("ETH-USD", "1m")
