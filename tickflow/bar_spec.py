"""Bar semantics as named settings, in the manner of nautilus_trader's bar specification.

nautilus_trader states three rules of a time bar explicitly (``BarSpecification`` and the ``DataEngine``
options ``time_bars_interval_type``, ``time_bars_timestamp_on_close``, ``time_bars_build_with_no_updates``);
Tickflow names the same three, each a field of :class:`tickflow.settings.Settings`:

- **window closure** (``bar_window_closure``): which end of an interval is closed. Tickflow's bars are
  Spark tumbling windows aligned to the Unix epoch, which are **left-closed, right-open** ``[start, end)``:
  a tick at ``t`` belongs to the bar with ``window_start <= t < window_end``. This is the opposite of
  nautilus_trader's default, ``time_bars_interval_type = LEFT_OPEN`` = ``(start, end]`` (its
  ``RIGHT_OPEN`` is Tickflow's ``[start, end)``). Only ``left`` is supported: it is what
  ``streaming_jobs/bars/aggregate.py`` computes (``start = floor(t / L) * L``).
- **bar timestamp** (``bar_timestamp``): which instant names a bar. A bar is keyed and stamped by its
  ``window_start`` (the primary key ``(symbol, interval, window_start)`` of ``ohlcv``, the REST cursor,
  the Redis value) and carries ``window_end``. nautilus_trader stamps by the close (``ts_event`` = end,
  ``time_bars_timestamp_on_close=True``). Only ``window_start`` is supported.
- **empty intervals** (``bar_empty_interval``): what the consumers of bars (indicators and anomaly features
  in ``streaming_jobs/indicators/state.py``, the ML features in ``ml/features.py``) do with an interval
  without trades. The bar job never emits a bar for it (no row in ``ohlcv``, nothing on Redis or Kafka).
  ``fill_forward`` (the default, as nautilus_trader's ``time_bars_build_with_no_updates=True``): the
  consumers compute over a gap-free grid where an empty interval is a flat bar at the previous close
  (open = high = low = close = vwap = previous close, volume, quote volume and trade count 0); only earlier
  bars fill a gap, so filling never looks ahead. ``skip``: the consumers compute over the bars that exist,
  so a look-back of *n* bars may span more than *n* intervals. Either way rows are only stored for bars
  that exist (an indicator row per ``ohlcv`` row); ML's next-bar target is the bar of the next interval,
  unknown (NaN, unlabelled) under ``skip`` when that interval is empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal, get_args

if TYPE_CHECKING:
    import pandas as pd

WindowClosure = Literal["left"]
"""``left``: intervals are ``[start, end)``."""

BarTimestamp = Literal["window_start"]
"""``window_start``: a bar is named by the start of its interval."""

EmptyIntervalPolicy = Literal["fill_forward", "skip"]
"""What a bar consumer does with an interval without trades (see the module docstring)."""

WINDOW_CLOSURES: Final[tuple[str, ...]] = get_args(WindowClosure)
BAR_TIMESTAMPS: Final[tuple[str, ...]] = get_args(BarTimestamp)
EMPTY_INTERVAL_POLICIES: Final[tuple[str, ...]] = get_args(EmptyIntervalPolicy)

DEFAULT_EMPTY_INTERVAL: Final[EmptyIntervalPolicy] = "fill_forward"

FILL_PRICE_COLUMNS: Final = ("open", "high", "low", "vwap")
"""Price columns (quote currency) a filled bar takes from the previous close."""

FILL_ZERO_COLUMNS: Final = ("volume", "quote_volume", "trade_count")
"""Columns (base units, quote currency, trades) that are 0 on a filled bar."""


def check_supported(name: str, value: str, supported: tuple[str, ...], reason: str) -> str:
    """``value`` when it is one of ``supported``.

    Raises:
        ValueError: naming the setting, the supported value(s) and ``reason`` (why no other value is).
    """
    if value not in supported:
        raise ValueError(f"{name}={value!r} is not supported; supported: {', '.join(supported)} ({reason})")
    return value


def apply_empty_interval_policy(
    bars: pd.DataFrame, step: pd.Timedelta | int, policy: EmptyIntervalPolicy
) -> pd.DataFrame:
    """``bars`` as a bar consumer sees them under ``policy``.

    Args:
        bars: bars of one (symbol, interval), indexed by ``window_start`` (a ``DatetimeIndex``, or integer
            µs since the Unix epoch), ascending, unique and aligned to ``step``; a ``close`` column and any
            of :data:`FILL_PRICE_COLUMNS` / :data:`FILL_ZERO_COLUMNS`.
        step: the interval (a ``Timedelta`` for a ``DatetimeIndex``, µs for an integer index).
        policy: ``skip`` returns ``bars`` unchanged; ``fill_forward`` reindexes them to every interval from
            the first to the last bar, an empty interval getting the previous close as every price and 0 as
            volume, quote volume and trade count.

    Returns:
        A new frame (``fill_forward``) or ``bars`` itself (``skip``); filled columns are float64.

    Raises:
        ValueError: an unknown ``policy``.
    """
    import numpy as np
    import pandas as pd

    check_supported("bar_empty_interval", policy, EMPTY_INTERVAL_POLICIES, "see tickflow/bar_spec.py")
    if policy == "skip" or len(bars) < 2:
        return bars
    index = bars.index
    if isinstance(index, pd.DatetimeIndex):
        grid: pd.Index = pd.date_range(index[0], index[-1], freq=step, name=index.name).astype(index.dtype)
    else:
        grid = pd.Index(np.arange(int(index[0]), int(index[-1]) + 1, int(step)), name=index.name)
    out = bars.reindex(grid)
    close = out["close"].astype("float64").ffill()
    out["close"] = close
    for name in FILL_PRICE_COLUMNS:
        if name in out.columns:
            out[name] = out[name].astype("float64").fillna(close)
    for name in FILL_ZERO_COLUMNS:
        if name in out.columns:
            out[name] = out[name].astype("float64").fillna(0.0)
    return out
