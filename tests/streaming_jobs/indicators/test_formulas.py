"""Indicator formulas against the StockCharts ChartSchool worksheets (``../shared/data/stockcharts``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from streaming_jobs.indicators.formulas import HISTORY_BARS, compute_indicators
from tickflow.schemas import INDICATOR_FIELDS


def _worksheet(shared_data: Path, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    sheet = pd.read_csv(shared_data / "stockcharts" / name)
    return sheet, compute_indicators(sheet["Close"])


def _assert_close(actual: pd.Series, expected: pd.Series, tolerance: float) -> None:
    both = actual.notna() & expected.notna()
    assert both.sum() >= 19
    np.testing.assert_allclose(actual[both], expected[both], rtol=0, atol=tolerance)


def test_rsi_equals_worksheet(shared_data: Path) -> None:
    sheet, values = _worksheet(shared_data, "cs-rsi.csv")
    # the worksheet gives 6 decimals: agreement within half a unit of the last digit (plus float noise)
    _assert_close(values["rsi_14"], sheet["RSI"], 6e-7)
    assert values["rsi_14"].iloc[:13].isna().all()


def test_bollinger_equals_worksheet(shared_data: Path) -> None:
    sheet, values = _worksheet(shared_data, "cs-bbands.csv")
    for column, expected in {
        "bb_middle": "MiddleBand",
        "bb_upper": "HighBand",
        "bb_lower": "LowBand",
        "bb_bandwidth": "WidthBand",
        "bb_percent_b": "PercentageBand",
    }.items():
        _assert_close(values[column], sheet[expected], 6e-7)
    assert values["bb_middle"].iloc[:19].isna().all() and values["bb_middle"].iloc[19:].notna().all()


def test_macd_equals_worksheet(shared_data: Path) -> None:
    sheet, values = _worksheet(shared_data, "cs-macd.csv")
    # EMAs and the MACD line are given to ~10 significant digits
    _assert_close(values["ema_12"], sheet["short_ema"], 1e-7)
    _assert_close(values["ema_26"], sheet["long_ema"], 1e-7)
    _assert_close(values["macd"], sheet["MACD_line"], 1e-7)
    # The worksheet seeds its signal EMA(9) with the MACD line of its 2nd row; ta (like ChartSchool's
    # article) starts it once the line exists (row 25, first signal at row 33). The seed's weight decays as
    # 0.8**k: 60 bars later both agree within 1e-6.
    first_signal = values["macd_signal"].first_valid_index()
    assert first_signal == 33
    converged = slice(first_signal + 60, None)
    _assert_close(values["macd_signal"].iloc[converged], sheet["MACD_signal"].iloc[converged], 1e-6)
    _assert_close(values["macd_hist"].iloc[converged], sheet["MACD_diff"].iloc[converged], 1e-6)
    np.testing.assert_allclose(values["macd_hist"], values["macd"] - values["macd_signal"], atol=1e-12)


def test_columns_match_indicators_table() -> None:
    migration = Path(__file__).resolve().parents[3] / "infra" / "db" / "migrations" / "0001_tables.sql"
    table = migration.read_text().split("CREATE TABLE indicators (")[1].split("PRIMARY KEY")[0]
    declared = [line.split()[0] for line in table.splitlines() if "double precision" in line]
    assert tuple(declared) == INDICATOR_FIELDS


def test_windows_fill_in_order_and_bad_input_is_refused() -> None:
    values = compute_indicators(pd.Series(np.linspace(100.0, 120.0, HISTORY_BARS)))
    assert values["sma_200"].iloc[:199].isna().all() and values["sma_200"].iloc[199:].notna().all()
    assert values["sma_50"].first_valid_index() == 49 and values["ema_26"].first_valid_index() == 25
    with pytest.raises(ValueError, match="finite"):
        compute_indicators(pd.Series([1.0, np.nan, 2.0]))
