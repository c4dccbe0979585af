"""Figure builders (pure functions) over the real Coinbase hour: every panel shows exactly its input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dashboard.figures import display_times, is_stock, market_figure, rangebreaks
from dashboard.frames import anomalies_frame, bars_frame, indicators_frame, predictions_frame
from dashboard.view import bars_needed, within_range
from tests.support.seed import indicator_rows


def as_api_items(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Rows as the API serves them: JSON with ISO-8601 times."""
    return json.loads(frame.to_json(orient="records", date_format="iso", date_unit="us"))


@pytest.fixture(scope="module")
def hour(coinbase_bars: dict[str, pd.DataFrame]) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """interval -> (bars_frame, indicators_frame) of the Coinbase hour, through the API's JSON shape."""
    frames = {}
    for name, reference in coinbase_bars.items():
        bars = reference.assign(is_final=True, updated_at=pd.Timestamp.now(tz="UTC"))
        frames[name] = (bars_frame(as_api_items(bars)), indicators_frame(as_api_items(indicator_rows(bars))))
    return frames


def trace(fig, name: str):
    return next(t for t in fig.data if t.name == name)


def naive_utc(times: pd.Series) -> list[pd.Timestamp]:
    return list(times.dt.tz_convert("UTC").dt.tz_localize(None))


@pytest.mark.parametrize(("interval", "count"), [("1m", 60), ("5m", 12), ("15m", 4)])
def test_candles_volume_and_vwap_equal_the_bars(hour, interval: str, count: int) -> None:
    bars, indicators = hour[interval]
    fig = market_figure("BTC-USD", interval, bars, indicators)
    candles = trace(fig, "OHLC")
    assert candles.type == "candlestick" and len(candles.x) == count
    assert list(pd.to_datetime(candles.x)) == naive_utc(bars["window_start"])
    for column in ("open", "high", "low", "close"):
        assert list(getattr(candles, column)) == list(bars[column])
    assert list(trace(fig, "VWAP").y) == list(bars["vwap"])
    assert list(trace(fig, "Volume").y) == list(bars["volume"])
    assert candles.xaxis == "x" and trace(fig, "Volume").xaxis == "x2"


def test_bollinger_rsi_and_macd_panels_show_the_indicators(hour) -> None:
    bars, indicators = hour["1m"]
    fig = market_figure("BTC-USD", "1m", bars, indicators)
    np.testing.assert_array_equal(trace(fig, "BB upper").y, indicators["bb_upper"])
    np.testing.assert_array_equal(trace(fig, "Bollinger (20, 2)").y, indicators["bb_lower"])
    np.testing.assert_array_equal(trace(fig, "BB middle").y, indicators["bb_middle"])
    rsi = trace(fig, "RSI 14")
    assert rsi.yaxis == "y3"
    np.testing.assert_array_equal(rsi.y, indicators["rsi_14"])
    rsi_levels = sorted(s.y0 for s in fig.layout.shapes if s.yref == "y3" and s.type == "line")
    assert rsi_levels == [30, 70]
    assert tuple(fig.layout.yaxis3.range) == (0, 100)
    for name, column in (("MACD", "macd"), ("Signal", "macd_signal"), ("Histogram", "macd_hist")):
        assert trace(fig, name).yaxis == "y4"
        np.testing.assert_array_equal(trace(fig, name).y, indicators[column])
    assert trace(fig, "Histogram").type == "bar"


def test_indicator_rows_are_matched_to_bars_by_time(hour) -> None:
    bars, indicators = hour["1m"]
    late = indicators.iloc[10:]  # the indicator job has not caught up with the first ten bars
    fig = market_figure("BTC-USD", "1m", bars, late)
    rsi = np.asarray(trace(fig, "RSI 14").y, dtype=float)
    assert np.isnan(rsi[:10]).all()
    np.testing.assert_array_equal(rsi[10:], late["rsi_14"])


def test_empty_states_say_what_is_missing(hour) -> None:
    fig = market_figure("ETH-USD", "5m", bars_frame([]), indicators_frame([]))
    assert [a.text for a in fig.layout.annotations] == ["No bars yet for ETH-USD 5m"]
    assert len(fig.data) == 0

    bars, warming = hour["15m"]  # 4 bars: every indicator still warming up
    fig = market_figure("BTC-USD", "15m", bars, indicators_frame([]))
    texts = [a.text for a in fig.layout.annotations]
    assert texts.count("no indicators yet for BTC-USD 15m") == 2  # the RSI and the MACD panel
    # an empty trace keeps each empty panel's axes (plotly drops axes no trace uses)
    assert (trace(fig, "rsi placeholder").yaxis, trace(fig, "macd placeholder").yaxis) == ("y3", "y4")

    fig = market_figure("BTC-USD", "15m", bars, warming)
    texts = [a.text for a in fig.layout.annotations]
    assert "RSI 14 warming up: needs 15 bars" in texts and "MACD warming up: needs 26 bars" in texts
    assert len(trace(fig, "OHLC").x) == 4


def test_a_single_bar_gets_a_visible_candle_and_a_sane_time_axis(hour) -> None:
    bars, indicators = hour["5m"]
    fig = market_figure("BTC-USD", "5m", bars.iloc[:1], indicators.iloc[:1])
    start = naive_utc(bars["window_start"])[0]
    assert [pd.Timestamp(t) for t in trace(fig, "OHLC").x] == [start]
    assert [pd.Timestamp(t) for t in trace(fig, "spacer").x] == [start - pd.Timedelta(minutes=5)]
    assert trace(fig, "spacer").opacity == 0
    shown = [pd.Timestamp(t) for t in fig.layout.xaxis.range]
    assert shown == [start - pd.Timedelta(minutes=3), start + pd.Timedelta(minutes=3)]
    assert trace(fig, "Volume").width == 5 * 60_000 * 0.7
    assert {fig.layout[f"xaxis{n}"].type for n in ("", "2", "3", "4")} == {"date"}
    assert len([t for t in market_figure("BTC-USD", "5m", bars, indicators).data if t.name == "spacer"]) == 0


def test_stock_symbols_hide_closed_market_hours() -> None:
    # Two AAPL sessions: Friday 2023-09-08 and Monday 2023-09-11, hourly bars from the open (13:30 UTC).
    starts = [
        pd.Timestamp(f"2023-09-{day} 13:30", tz="UTC") + pd.Timedelta(hours=h)
        for day in (8, 11)
        for h in range(7)
    ]
    prices = np.linspace(178.0, 180.0, len(starts))
    bars = pd.DataFrame(
        {
            "symbol": "AAPL",
            "interval": "1h",
            "window_start": starts,
            "open": prices,
            "high": prices + 0.5,
            "low": prices - 0.5,
            "close": prices + 0.1,
            "volume": 1000.0,
            "quote_volume": prices * 1000.0,
            "vwap": prices,
            "trade_count": 10,
        }
    )
    frame = bars_frame(as_api_items(bars))
    fig = market_figure("AAPL", "1h", frame, indicators_frame([]))
    assert is_stock("AAPL") and not is_stock("BTC-USD")
    breaks = [rb.to_plotly_json() for rb in fig.layout.xaxis.rangebreaks]
    assert breaks == [{"bounds": ["sat", "mon"]}, {"bounds": [16, 9.5], "pattern": "hour"}]
    assert [rb.to_plotly_json() for rb in fig.layout.xaxis4.rangebreaks] == breaks  # every panel
    first = pd.Timestamp(trace(fig, "OHLC").x[0])
    assert first == pd.Timestamp("2023-09-08 09:30")  # New York wall-clock time: the open
    crypto = market_figure("BTC-USD", "1h", frame.assign(symbol="BTC-USD"), indicators_frame([]))
    assert crypto.layout.xaxis.rangebreaks == () and rangebreaks("BTC-USD") == []
    assert list(display_times(frame["window_start"], "BTC-USD")) == naive_utc(frame["window_start"])


def test_predictions_and_anomalies_are_overlaid(hour) -> None:
    bars, indicators = hour["1m"]
    last = bars.iloc[-3:]
    predictions = predictions_frame(
        as_api_items(
            pd.DataFrame(
                {
                    "symbol": "BTC-USD",
                    "interval": "1m",
                    "window_start": last["window_start"] + pd.Timedelta(minutes=1),
                    "model_version": "v1",
                    "predicted_close": last["close"] * 1.001,
                    "predicted_return": 0.001,
                    "lower": last["close"] * 0.99,
                    "upper": last["close"] * 1.01,
                    "base_close": last["close"],
                    "created_at": pd.Timestamp("2023-09-05 17:00", tz="UTC"),
                }
            )
        )
    )
    anomaly = {
        "anomaly_type": "volume_spike",
        "severity": "warning",
        "symbol": "BTC-USD",
        "event_time": bars["window_start"].iloc[5].isoformat(),
        "value": 8.4,
        "threshold": 3.0,
        "details": {},
        "detected_at": "2023-09-05T17:00:00+00:00",
    }
    other_interval = {**anomaly, "interval": "5m", "event_time": bars["window_start"].iloc[10].isoformat()}
    anomalies = anomalies_frame([{**anomaly, "interval": "1m"}, other_interval])
    fig = market_figure("BTC-USD", "1m", bars, indicators, predictions, anomalies)
    predicted = trace(fig, "Predicted close")
    assert list(predicted.y) == list(predictions["predicted_close"])
    assert pd.Timestamp(predicted.x[-1]) == naive_utc(bars["window_start"])[-1] + pd.Timedelta(minutes=1)
    assert list(trace(fig, "Prediction band").y) == list(predictions["lower"])
    marks = trace(fig, "Anomaly")
    assert [pd.Timestamp(x) for x in marks.x] == [naive_utc(bars["window_start"])[5]]  # only this interval's
    assert "volume spike (warning)" in marks.text[0]


def test_time_ranges_are_anchored_at_the_newest_bar(hour) -> None:
    assert (bars_needed("1H", "1m"), bars_needed("1H", "5m"), bars_needed("1D", "15m")) == (60, 12, 96)
    assert bars_needed("Max", "1m") == 10_000
    for interval, count in (("1m", 60), ("5m", 12), ("15m", 4)):
        bars, _ = hour[interval]
        assert len(within_range(bars, "1H")) == count
    one_minute, _ = hour["1m"]
    shown = within_range(one_minute.iloc[:-5], "1H")["window_start"].dt.strftime("%H:%M")
    assert (len(shown), shown.iloc[0], shown.iloc[-1]) == (55, "16:00", "16:54")
    assert len(within_range(one_minute, "6H")) == 60
