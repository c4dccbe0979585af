"""The feature definition: no look-ahead, the next-bar target, gap filling, and enough live history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.features import FEATURE_COLUMNS, HISTORY_BARS, build_features, make_dataset, regularize
from tests.ml.synthetic import synthetic_bars
from tests.support.seed import indicator_rows


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    frame = synthetic_bars("SYN-USD", 400, seed=3)
    return frame.drop(index=[50, 51, 52, 200]).reset_index(drop=True)  # empty windows: gaps to fill


def _perturb_after(frame: pd.DataFrame, cut: pd.Timestamp, seed: int) -> pd.DataFrame:
    """Bars after ``cut`` replaced by unrelated values (still valid bars); earlier bars untouched."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    future = out["window_start"] > cut
    scale = rng.uniform(0.5, 2.0, future.sum())
    for name in ("open", "high", "low", "close", "vwap"):
        out.loc[future, name] = out.loc[future, name].to_numpy() * scale
    out.loc[future, "volume"] = rng.uniform(0.0, 100.0, future.sum())
    out.loc[future, "trade_count"] = rng.integers(1, 1000, future.sum())
    return out.drop(index=out.index[future][::7])  # and some future windows disappear


@pytest.mark.parametrize("cut_row", [30, 120, 250, 380])
def test_features_do_not_change_when_the_future_changes(bars: pd.DataFrame, cut_row: int) -> None:
    cut = bars["window_start"].iloc[cut_row]
    indicators = indicator_rows(bars)
    changed_bars = _perturb_after(bars, cut, seed=cut_row)
    changed_indicators = indicators.copy()
    future = changed_indicators["window_start"] > cut
    changed_indicators.loc[future, ["sma_20", "rsi_14", "macd_hist"]] = 1.0

    original = build_features(bars, "1m", indicators)
    changed = build_features(changed_bars, "1m", changed_indicators)

    assert (
        original.loc[original.index > cut] != changed.reindex(original.index).loc[original.index > cut]
    ).any(axis=None), "the perturbation must change future features, or the test proves nothing"
    pd.testing.assert_frame_equal(original.loc[:cut], changed.loc[:cut])


def test_target_is_the_next_bars_return_and_unknown_for_the_newest_bar(bars: pd.DataFrame) -> None:
    data = make_dataset(bars, "1m")
    close = bars.set_index("window_start")["close"]
    t = close.index[10]
    expected = close.loc[t + pd.Timedelta(minutes=1)] / close.loc[t] - 1.0
    assert data.target_return.loc[t] == pytest.approx(expected, rel=1e-12)
    assert data.next_close.loc[t] == pytest.approx(close.loc[t + pd.Timedelta(minutes=1)], rel=1e-12)
    assert np.isnan(data.target_return.iloc[-1])
    assert len(data.labelled()) == len(data) - 1
    assert list(data.features.columns) == list(FEATURE_COLUMNS)


def test_empty_windows_get_a_flat_bar_at_the_previous_close(bars: pd.DataFrame) -> None:
    grid = regularize(bars, "1m")
    assert len(grid) == 400  # 4 dropped windows are back
    gap = pd.Timestamp("2024-01-01T00:50:00Z")
    previous_close = bars.set_index("window_start")["close"].loc[gap - pd.Timedelta(minutes=1)]
    row = grid.loc[gap]
    assert (row[["open", "high", "low", "close", "vwap"]] == previous_close).all()
    assert row["volume"] == 0.0 and row["trade_count"] == 0.0
    target = make_dataset(bars, "1m").target_return
    assert target.loc[gap - pd.Timedelta(minutes=1)] == 0.0  # no trade: the price did not move


def test_the_newest_history_bars_give_the_same_newest_features_as_the_full_history(
    bars: pd.DataFrame,
) -> None:
    """Live prediction loads only HISTORY_BARS bars; its features must equal training's."""
    full = build_features(bars, "1m").iloc[-1]
    recent = build_features(bars.iloc[-HISTORY_BARS:], "1m").iloc[-1]
    pd.testing.assert_series_equal(full, recent)
    too_short = build_features(bars.iloc[-(HISTORY_BARS - 1) :], "1m").iloc[-1]
    assert too_short.isna().any(), "HISTORY_BARS should be the minimum, not more than needed"


def test_indicator_features_come_from_the_indicator_rows(bars: pd.DataFrame) -> None:
    indicators = indicator_rows(bars)
    with_ind = build_features(bars, "1m", indicators)
    without = build_features(bars, "1m")
    row = indicators.set_index("window_start").iloc[100]
    t = indicators["window_start"].iloc[100]
    assert with_ind.loc[t, "ind_rsi_14"] == pytest.approx(row["rsi_14"])
    close = bars.set_index("window_start")["close"].loc[t]
    assert with_ind.loc[t, "ind_sma_20_gap"] == pytest.approx(close / row["sma_20"] - 1.0)
    assert without.filter(like="ind_").isna().all(axis=None)
    pd.testing.assert_frame_equal(
        with_ind.drop(columns=with_ind.filter(like="ind_").columns),
        without.drop(columns=without.filter(like="ind_").columns),
    )


def test_bad_bars_raise_clear_errors(bars: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="lack columns"):
        build_features(bars.drop(columns="vwap"), "1m")
    with pytest.raises(ValueError, match="duplicated"):
        build_features(pd.concat([bars.iloc[:5], bars.iloc[:1]]), "1m")
    shifted = bars.assign(
        window_start=bars["window_start"] + pd.Timedelta(seconds=30) * (bars.index == 3).astype(int)
    )
    with pytest.raises(ValueError, match="not aligned"):
        build_features(shifted, "1m")
    with pytest.raises(ValueError, match="unknown interval"):
        build_features(bars, "7m")
