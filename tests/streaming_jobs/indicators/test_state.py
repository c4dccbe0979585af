"""Per-key history: incremental updates, revisions and restarts give the values of a batch run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from streaming_jobs.anomalies.features import bar_features
from streaming_jobs.indicators.formulas import HISTORY_BARS, compute_indicators
from streaming_jobs.indicators.state import (
    HISTORY_FIELDS,
    Step,
    advance,
    empty_history,
    history_from_state,
    history_to_state,
)
from tickflow.bar_spec import EmptyIntervalPolicy, apply_empty_interval_policy
from tickflow.intervals import Interval
from tickflow.schemas import INDICATOR_FIELDS

MINUTE_US = 60_000_000
# Rolling sums (SMA, σ) round differently when the series starts elsewhere: ~1e-13 relative on prices,
# which becomes ~1e-11 absolute on %B near zero.
RTOL, ATOL = 1e-9, 1e-9


def synthetic_bars(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    return pd.DataFrame(
        {
            "window_start": np.arange(n, dtype="int64") * MINUTE_US,
            "high": close * 1.002,
            "low": close * 0.998,
            "close": close,
            "volume": rng.uniform(1.0, 3.0, n),
        }
    )


def step(
    history: pd.DataFrame,
    bars: pd.DataFrame,
    interval_us: int = MINUTE_US,
    empty_interval: EmptyIntervalPolicy = "fill_forward",
) -> Step:
    return advance(
        history,
        bars,
        history_bars=HISTORY_BARS,
        volume_window=20,
        zscore_window=50,
        interval_us=interval_us,
        empty_interval=empty_interval,
    )


def stream(
    bars: pd.DataFrame,
    chunks: list[pd.DataFrame],
    history: pd.DataFrame | None = None,
    interval_us: int = MINUTE_US,
    empty_interval: EmptyIntervalPolicy = "fill_forward",
) -> pd.DataFrame:
    """Run ``chunks`` through ``advance``, storing the history between steps as the job does; return the
    last emitted row of each window."""
    history = empty_history() if history is None else history
    emitted = []
    for chunk in chunks:
        result = step(history, chunk, interval_us, empty_interval)
        history = history_from_state(history_to_state(result.history))
        assert len(history) <= HISTORY_BARS
        emitted.append(result.rows)
    return (
        pd.concat(emitted).drop_duplicates("window_start", keep="last").set_index("window_start").sort_index()
    )


def assert_equals_batch(rows: pd.DataFrame, bars: pd.DataFrame) -> None:
    expected = compute_indicators(bars.set_index("window_start")["close"])
    assert list(rows.index) == list(expected.index)
    for column in INDICATOR_FIELDS:
        np.testing.assert_allclose(rows[column], expected[column], rtol=RTOL, atol=ATOL, err_msg=column)


def test_incremental_equals_batch_beyond_the_kept_history() -> None:
    bars = synthetic_bars(3 * HISTORY_BARS)
    chunks = [bars.iloc[i : i + 23] for i in range(0, len(bars), 23)]
    rows = stream(bars, chunks)
    assert_equals_batch(rows, bars)
    assert rows["sma_200"].notna().sum() == len(bars) - 199


def test_revised_bar_revises_its_row_and_the_rows_after_it() -> None:
    bars = synthetic_bars(300)
    history = step(empty_history(), bars).history
    revised = bars.iloc[[297]].assign(
        close=bars["close"].iloc[297] * 1.01, high=bars["high"].iloc[297] * 1.01
    )
    result = step(history, revised)
    assert list(result.rows["window_start"]) == list(bars["window_start"].iloc[297:])
    final = pd.concat([bars.iloc[:297], revised, bars.iloc[298:]], ignore_index=True)
    expected = compute_indicators(final["close"]).iloc[297:].reset_index(drop=True)
    for column in INDICATOR_FIELDS:
        np.testing.assert_allclose(result.rows[column], expected[column], rtol=RTOL, atol=ATOL)
    assert result.rows["close"].iloc[0] == revised["close"].iloc[0]


def test_late_bar_between_known_bars_is_inserted_in_order() -> None:
    bars = synthetic_bars(120)
    late = bars.iloc[[100]]
    rows = stream(bars, [bars.drop(index=100), late])
    assert_equals_batch(rows, bars)


def test_restart_from_stored_state_equals_uninterrupted_run() -> None:
    bars = synthetic_bars(900)
    uninterrupted = stream(bars, [bars.iloc[i : i + 50] for i in range(0, 900, 50)])
    first = step(empty_history(), bars.iloc[:450])
    stored = history_to_state(first.history)  # what the checkpoint keeps
    resumed = stream(bars, [bars.iloc[i : i + 50] for i in range(450, 900, 50)], history_from_state(stored))
    pd.testing.assert_frame_equal(resumed, uninterrupted.loc[resumed.index], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("interval", ["1m", "5m", "15m"])
def test_coinbase_hour_streamed_bar_by_bar_equals_ta_batch(
    coinbase_bars: dict[str, pd.DataFrame], interval: str
) -> None:
    bars = coinbase_bars[interval]
    micros = pd.to_datetime(bars["window_start"], utc=True).astype("datetime64[us, UTC]").astype("int64")
    bars = bars.assign(window_start=micros)[list(HISTORY_FIELDS)]
    interval_us = Interval.parse(interval).micros
    rows = stream(bars, [bars.iloc[[i]] for i in range(len(bars))], interval_us=interval_us)
    assert_equals_batch(rows, bars)
    if interval == "1m":
        assert rows["rsi_14"].notna().sum() == 60 - 13 and rows["bb_upper"].notna().sum() == 60 - 19


def test_bad_input_is_refused() -> None:
    bars = synthetic_bars(3)
    with pytest.raises(ValueError, match="at least one"):
        step(empty_history(), bars.iloc[:0])
    with pytest.raises(ValueError, match="one revision"):
        step(empty_history(), pd.concat([bars, bars.iloc[[0]]]))


def with_gaps() -> tuple[pd.DataFrame, list[int]]:
    """Synthetic bars with three intervals without trades (no bar), and the dropped rows."""
    bars = synthetic_bars(400, seed=11)
    dropped = [150, 151, 300]
    return bars.drop(index=dropped).reset_index(drop=True), dropped


def test_fill_forward_computes_over_the_gap_free_grid_and_emits_rows_of_existing_bars_only() -> None:
    bars, dropped = with_gaps()
    rows = stream(bars, [bars.iloc[i : i + 37] for i in range(0, len(bars), 37)])
    grid = apply_empty_interval_policy(bars.set_index("window_start"), MINUTE_US, "fill_forward")
    assert len(grid) == 400 and (grid["volume"].iloc[dropped] == 0.0).all()
    assert grid["close"].iloc[150] == grid["close"].iloc[149] == grid["high"].iloc[151]
    expected = compute_indicators(grid["close"]).loc[bars["window_start"]]
    assert list(rows.index) == list(bars["window_start"])  # no row for an empty interval
    for column in INDICATOR_FIELDS:
        np.testing.assert_allclose(rows[column], expected[column], rtol=RTOL, atol=ATOL, err_msg=column)
    features = bar_features(grid, volume_window=20, zscore_window=50).loc[bars["window_start"]]
    np.testing.assert_allclose(rows["volume_mean"], features["volume_mean"], rtol=RTOL, atol=ATOL)
    skipped = compute_indicators(bars.set_index("window_start")["close"])
    assert not np.allclose(rows["sma_20"].iloc[160:170], skipped["sma_20"].iloc[160:170], rtol=1e-12), (
        "the gap must change the values, or the test proves nothing"
    )


def test_skip_computes_over_the_existing_bars() -> None:
    bars, _ = with_gaps()
    rows = stream(bars, [bars.iloc[i : i + 37] for i in range(0, len(bars), 37)], empty_interval="skip")
    assert_equals_batch(rows, bars)


def test_fill_forward_needs_the_interval() -> None:
    bars = synthetic_bars(3)
    with pytest.raises(ValueError, match="interval_us"):
        advance(empty_history(), bars, history_bars=10, volume_window=2, zscore_window=3)
