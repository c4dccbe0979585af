"""The live walk-forward score of served predictions against the final closes, recomputed with numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg2

from ml.live_score import live_score
from tests.ml.seed import insert_bars
from tickflow.settings import Settings


def test_live_score_of_served_predictions(ml_db: Settings, coinbase_bars: dict[str, pd.DataFrame]) -> None:
    bars = coinbase_bars["1m"].reset_index(drop=True)
    insert_bars(ml_db.postgres_dsn, bars.iloc[:-1])
    insert_bars(ml_db.postgres_dsn, bars.iloc[-1:], final=False)  # its prediction is not scored yet
    rng = np.random.default_rng(7)
    targets = bars.iloc[-21:]  # predictions of the last 21 bars, made from the bar before each
    base = bars["close"].iloc[-22:-1].to_numpy()
    predicted = base + rng.normal(0.0, 2.0, len(base))
    half = np.where(np.arange(len(base)) % 3 == 0, 0.5, 50.0)  # every third band is too narrow
    rows = [
        (r.symbol, r.interval, r.window_start, "v1", *map(float, (p, p / b - 1, p - h, p + h, b)))
        for r, p, b, h in zip(targets.itertuples(), predicted, base, half, strict=True)
    ]
    with psycopg2.connect(ml_db.postgres_dsn) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO predictions (symbol, interval, window_start, model_version, predicted_close,"
                " predicted_return, lower, upper, base_close) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
        score = live_score(conn, "BTC-USD", "1m")
        unknown = live_score(conn, "ETH-USD", "1m")
    conn.close()

    actual = targets["close"].to_numpy()[:-1]  # the newest bar is not final
    p, b, h = predicted[:-1], base[:-1], half[:-1]
    assert score.n == 20
    expected_ratio = np.sqrt(np.mean((actual - p) ** 2)) / np.sqrt(np.mean((actual - b) ** 2))
    assert score.rmse_vs_naive == round(expected_ratio, 4)
    assert score.band_coverage == round(float(np.mean(np.abs(actual - p) <= h)), 4)
    assert score.band_coverage < 1.0
    assert (unknown.n, unknown.rmse_vs_naive, unknown.band_coverage) == (0, None, None)
