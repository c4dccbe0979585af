"""Bar semantics: the settings that name them, the OHLCVBar invariants, and the empty-interval policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pydantic
import pytest

from tickflow.bar_spec import apply_empty_interval_policy
from tickflow.schemas import OHLCVBar
from tickflow.settings import Settings

START = datetime(2023, 9, 5, 16, 59, tzinfo=UTC)
GOOD = {
    "symbol": "BTC-USD",
    "interval": "1m",
    "window_start": START,
    "window_end": START + timedelta(minutes=1),
    "open": 25780.0,
    "high": 25790.5,
    "low": 25779.0,
    "close": 25785.33,
    "volume": 1.5,
    "quote_volume": 38677.995,
    "vwap": 25785.33,
    "trade_count": 42,
    "first_trade_time": START + timedelta(seconds=0.5),
    "last_trade_time": START + timedelta(seconds=59.999999),
}


def test_a_valid_bar_round_trips_through_json() -> None:
    bar = OHLCVBar(**GOOD)
    assert OHLCVBar.model_validate_json(bar.to_json()) == bar


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"high": 25784.0}, "low <= open, close <= high"),  # close above high
        ({"low": 25781.0}, "low <= open, close <= high"),  # open below low
        ({"open": 25791.0}, "low <= open, close <= high"),
        ({"low": 0.0, "open": 1.0}, "0 < low"),
        ({"vwap": 25800.0}, "vwap"),
        ({"volume": 0.0}, "a bar needs trades"),
        ({"volume": -1.0}, "a bar needs trades"),
        ({"trade_count": 0}, "a bar needs trades"),
        ({"window_end": START + timedelta(minutes=5)}, "interval 1m is 1 min"),
        ({"interval": "5m"}, "interval 5m is 5 min"),
        ({"interval": "2m"}, "unknown interval"),
        (
            {"window_start": START + timedelta(seconds=1), "window_end": START + timedelta(seconds=61)},
            "not aligned",
        ),
        ({"last_trade_time": START + timedelta(minutes=1)}, "last_trade_time < window_end"),  # right-open
        ({"first_trade_time": START - timedelta(microseconds=1)}, "window_start <= first_trade_time"),
        ({"first_trade_time": START + timedelta(seconds=59.9999995)}, "first_trade_time <= last"),
    ],
)
def test_a_bar_breaking_an_invariant_is_refused_with_the_invariant_named(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        OHLCVBar(**(GOOD | changes))


def test_a_tick_at_window_start_is_inside_and_vwap_rounding_is_tolerated() -> None:
    bar = OHLCVBar(**(GOOD | {"first_trade_time": START, "vwap": GOOD["high"] * (1 + 1e-12)}))
    assert bar.first_trade_time == bar.window_start


def test_bar_settings_default_to_the_implemented_semantics() -> None:
    settings = Settings()
    assert (settings.bar_window_closure, settings.bar_timestamp) == ("left", "window_start")
    assert settings.bar_empty_interval == "fill_forward"
    assert Settings(bar_empty_interval="skip").bar_empty_interval == "skip"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("bar_window_closure", "right", "supported: left .*Spark tumbling windows"),
        ("bar_timestamp", "window_end", "supported: window_start"),
        ("bar_empty_interval", "zero_fill", "fill_forward' or 'skip"),
    ],
)
def test_an_unsupported_bar_setting_is_refused_with_the_supported_values(
    field: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"TICKFLOW_{field.upper()}", value)
    with pytest.raises(pydantic.ValidationError, match=message):
        Settings()


def _bars(starts: list[int]) -> pd.DataFrame:
    index = pd.DatetimeIndex([pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(minutes=m) for m in starts])
    n = len(starts)
    return pd.DataFrame(
        {
            "open": [10.0 + i for i in range(n)],
            "high": [11.0 + i for i in range(n)],
            "low": [9.0 + i for i in range(n)],
            "close": [10.5 + i for i in range(n)],
            "vwap": [10.2 + i for i in range(n)],
            "volume": [2.0] * n,
            "trade_count": [3] * n,
        },
        index=index.rename("window_start").astype("datetime64[us, UTC]"),
    )


def test_fill_forward_gives_an_empty_interval_a_flat_bar_at_the_previous_close() -> None:
    bars = _bars([0, 1, 4])
    filled = apply_empty_interval_policy(bars, pd.Timedelta(minutes=1), "fill_forward")
    assert len(filled) == 5 and filled.index.dtype == bars.index.dtype
    for minute in (2, 3):
        row = filled.iloc[minute]
        assert (row[["open", "high", "low", "close", "vwap"]] == 11.5).all()  # close of minute 1
        assert row["volume"] == 0.0 and row["trade_count"] == 0.0
    pd.testing.assert_frame_equal(filled.loc[bars.index], bars.astype("float64"), check_freq=False)


def test_skip_leaves_the_bars_as_they_are_and_integer_indexes_are_filled_too() -> None:
    bars = _bars([0, 1, 4])
    assert apply_empty_interval_policy(bars, pd.Timedelta(minutes=1), "skip") is bars
    micros = bars.set_axis(pd.Index([0, 60_000_000, 240_000_000], name="window_start"))
    filled = apply_empty_interval_policy(micros, 60_000_000, "fill_forward")
    assert list(filled.index) == [0, 60_000_000, 120_000_000, 180_000_000, 240_000_000]
    with pytest.raises(ValueError, match="not supported"):
        apply_empty_interval_policy(bars, pd.Timedelta(minutes=1), "interpolate")  # type: ignore[arg-type]
