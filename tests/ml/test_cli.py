"""`tickflow ml train|evaluate|predict|models` end to end on the Coinbase hour and synthetic bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import psycopg2
import pytest
import redis
from typer.testing import CliRunner

from ml.cli import ml_app
from ml.registry import ModelRegistry
from tickflow.keys import prediction_key
from tickflow.settings import Settings, get_settings

runner = CliRunner()


def test_evaluate_reports_model_and_baselines_per_series(
    cli_env: Settings, coinbase_bars: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    out = tmp_path / "report"
    result = runner.invoke(ml_app, ["evaluate", "--folds", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output

    metrics = pd.read_csv(out / "metrics.csv")
    table = metrics.set_index(["symbol", "interval", "predictor"])
    for series in (("BTC-USD", "1m"), ("GBM-USD", "1m"), ("AR-USD", "1m")):
        for predictor in ("model", "naive", "drift"):
            row = table.loc[(*series, predictor)]
            assert np.isfinite(row[["rmse_close", "mae_close", "rmse_return_bp", "mae_return_bp"]]).all()
            assert row["rmse_close"] > 0
        assert 0.0 <= table.loc[(*series, "model"), "directional_accuracy"] <= 1.0
        assert 0.0 <= table.loc[(*series, "model"), "band_coverage"] <= 1.0

    # The naive baseline on the real hour, recomputed independently from the trades CSV: the walk-forward
    # tests the newest n labelled bars, and the last-close forecast misses by close[t+1] - close[t].
    n = int(table.loc[("BTC-USD", "1m", "naive"), "n"])
    close = coinbase_bars["1m"]["close"].to_numpy()
    misses = np.diff(close)[-n:]
    assert n == 29  # 59 labelled bars, the older half (30) only trains
    assert table.loc[("BTC-USD", "1m", "naive"), "rmse_close"] == pytest.approx(
        np.sqrt(np.mean(misses**2)), rel=1e-9
    )
    assert table.loc[("BTC-USD", "1m", "naive"), "mae_close"] == pytest.approx(
        np.mean(np.abs(misses)), rel=1e-9
    )

    # A learnable series is learnt, a random walk is not "beaten" by luck.
    assert table.loc[("AR-USD", "1m", "model"), "rmse_vs_naive"] < 0.98
    assert table.loc[("AR-USD", "1m", "model"), "dm_pvalue"] < 0.05
    assert table.loc[("GBM-USD", "1m", "model"), "rmse_vs_naive"] > 0.98

    skipped = pd.read_csv(out / "skipped.csv").set_index(["symbol", "interval"])
    assert set(skipped.index) == {("BTC-USD", "5m"), ("BTC-USD", "15m")}
    assert "11 labelled bars" in skipped.loc[("BTC-USD", "5m"), "reason"]

    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions[predictions["symbol"] == "BTC-USD"]) == n
    html = (out / "report.html").read_text()
    assert "plotly" in html and "BTC-USD 1m: out-of-sample" in html
    assert "AR-USD 1m: model RMSE" in result.output and "beats the naive baseline" in result.output
    coverage = table.loc[("AR-USD", "1m", "model"), "band_coverage"]
    assert f"band coverage {coverage:.1%} vs nominal 90%" in result.output  # measured walk-forward


def test_train_predict_models(cli_env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKFLOW_PREDICTION_BAND", "0.8")
    get_settings.cache_clear()
    result = runner.invoke(ml_app, ["train", "-i", "1m", "-i", "5m"])
    assert result.exit_code == 0, result.output
    assert "skipped BTC-USD 5m" in result.output
    for symbol in ("AR-USD", "BTC-USD", "GBM-USD"):
        assert len(list((cli_env.model_dir / symbol / "1m").iterdir())) == 1

    result = runner.invoke(ml_app, ["predict", "-s", "BTC-USD", "-s", "AR-USD"])
    assert result.exit_code == 0, result.output
    with psycopg2.connect(cli_env.postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT symbol, interval, window_start, base_close FROM predictions ORDER BY symbol, interval"
        )
        rows = cur.fetchall()
    conn.close()
    assert [(r[0], r[1]) for r in rows] == [("AR-USD", "1m"), ("BTC-USD", "1m")]
    btc = rows[1]
    assert btc[2] == pd.Timestamp("2023-09-05T17:00:00Z")  # the bar after the hour's last bar
    client = redis.Redis.from_url(cli_env.redis_url)
    payload = orjson.loads(client.get(prediction_key("BTC-USD", "1m")))
    assert payload["base_close"] == float(btc[3])
    assert payload["band"] == 0.8 == ModelRegistry(cli_env.model_dir).load("BTC-USD", "1m").info.band
    client.close()

    result = runner.invoke(ml_app, ["models"])
    assert result.exit_code == 0
    assert sorted(line.split(":")[0] for line in result.output.splitlines()) == [
        "AR-USD 1m",
        "BTC-USD 1m",
        "GBM-USD 1m",
    ]


def test_a_database_that_is_down_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKFLOW_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:1/none")
    get_settings.cache_clear()
    try:
        result = runner.invoke(ml_app, ["train"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "cannot reach PostgreSQL" in result.output
