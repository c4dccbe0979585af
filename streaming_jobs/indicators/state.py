"""Per-(symbol, interval) bar history and the step that turns new or revised bars into indicator rows.

The history is the state of the streaming job: the last ``history_bars`` bars of a key (window start and
the prices and volume the indicators and anomaly features need). Each micro-batch merges the key's new
bar revisions into it, recomputes :func:`compute_indicators` and :func:`bar_features` over the whole
history, and emits a row for every bar from the earliest changed one on: a revised bar revises its own
row and every later row its value feeds into. Because the history holds ``HISTORY_BARS`` bars, the
values equal a batch run over all bars of the key (see :data:`formulas.HISTORY_BARS`).

Intervals without trades (no bar) are handled by the ``bar_empty_interval`` policy shared with ML
(:func:`tickflow.bar_spec.apply_empty_interval_policy`): under ``fill_forward`` the indicators and features
are computed over a gap-free grid where an empty interval is a flat bar at the previous close with zero
volume; under ``skip`` over the bars that exist. Rows are emitted for existing bars only.

Pure pandas, no Spark: the job's state function and the tests both call :func:`advance`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pandas as pd
import pyarrow as pa

from streaming_jobs.anomalies.features import FEATURE_COLUMNS, bar_features
from streaming_jobs.indicators.formulas import compute_indicators
from tickflow.bar_spec import DEFAULT_EMPTY_INTERVAL, EmptyIntervalPolicy, apply_empty_interval_policy
from tickflow.schemas import INDICATOR_FIELDS

HISTORY_FIELDS: Final[tuple[str, ...]] = ("window_start", "high", "low", "close", "volume")
"""Columns of a history: ``window_start`` in integer µs since the Unix epoch (UTC), prices in quote
currency, volume in base units."""

HISTORY_DTYPES: Final[dict[str, str]] = {
    name: "int64" if name == "window_start" else "float64" for name in HISTORY_FIELDS
}

STATE_DDL: Final = "history BINARY"
"""Spark schema of the stored state: the history as an Arrow IPC stream. (pyspark 4.3 cannot hand array
columns of a state schema to its Python workers: ``KeyError: 'elementType'``.)"""

ROW_COLUMNS: Final[tuple[str, ...]] = (
    "window_start",
    "close",
    *INDICATOR_FIELDS,
    *(c for c in FEATURE_COLUMNS if c != "volume"),
    "volume",
)
"""Columns of the rows :func:`advance` emits (``window_start`` in µs)."""


@dataclass(frozen=True)
class Step:
    """Result of :func:`advance`."""

    history: pd.DataFrame
    """The new history, trimmed to the last ``history_bars`` bars."""
    rows: pd.DataFrame
    """``ROW_COLUMNS`` of every bar from the earliest changed one on, oldest first."""


def empty_history() -> pd.DataFrame:
    """A history without bars."""
    return pd.DataFrame({name: pd.Series(dtype=HISTORY_DTYPES[name]) for name in HISTORY_FIELDS})


def history_from_state(state: tuple[bytes]) -> pd.DataFrame:
    """The history stored as ``STATE_DDL`` by :func:`history_to_state`."""
    with pa.ipc.open_stream(state[0]) as reader:
        return reader.read_pandas().astype(HISTORY_DTYPES)


def history_to_state(history: pd.DataFrame) -> tuple[bytes]:
    """The history as a ``STATE_DDL`` tuple."""
    table = pa.Table.from_pandas(history[list(HISTORY_FIELDS)], preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return (sink.getvalue().to_pybytes(),)


def advance(
    history: pd.DataFrame,
    bars: pd.DataFrame,
    *,
    history_bars: int,
    volume_window: int,
    zscore_window: int,
    interval_us: int | None = None,
    empty_interval: EmptyIntervalPolicy = DEFAULT_EMPTY_INTERVAL,
) -> Step:
    """Merge new or revised ``bars`` of one key into ``history`` and compute the rows they change.

    Args:
        history: the key's history (``HISTORY_FIELDS``, ascending unique ``window_start``).
        bars: at least one bar with ``HISTORY_FIELDS``, at most one row per ``window_start`` (the latest
            revision); a bar replaces the history's bar of the same window.
        history_bars: bars kept in the returned history.
        volume_window: see :func:`bar_features`.
        zscore_window: see :func:`bar_features`.
        interval_us: the key's interval (µs); needed by ``fill_forward``.
        empty_interval: the ``bar_empty_interval`` setting (see the module docstring).

    Returns:
        The new history and the rows of all bars with ``window_start`` >= the earliest bar in ``bars``.
        A bar older than the kept history still gets its row, computed from the bars around it. Filled
        (empty) intervals get no row.

    Raises:
        ValueError: ``bars`` is empty, repeats a window, or has a non-finite close; ``fill_forward``
            without ``interval_us``.
    """
    if bars.empty:
        raise ValueError("advance() needs at least one bar")
    if bars["window_start"].duplicated().any():
        raise ValueError("bars must hold one revision per window_start")
    incoming = bars[list(HISTORY_FIELDS)].astype(HISTORY_DTYPES)
    kept = history[~history["window_start"].isin(incoming["window_start"])]
    merged = pd.concat([kept, incoming], ignore_index=True).sort_values("window_start", ignore_index=True)
    if empty_interval == "fill_forward" and interval_us is None:
        raise ValueError("bar_empty_interval=fill_forward needs the interval (interval_us)")
    grid = apply_empty_interval_policy(
        merged.set_index("window_start"), interval_us or 1, empty_interval
    ).reset_index()
    indicators = compute_indicators(grid["close"])
    features = bar_features(grid, volume_window=volume_window, zscore_window=zscore_window)
    table = pd.concat([grid[["window_start", "close"]], indicators, features], axis=1)
    is_bar = table["window_start"].isin(merged["window_start"])
    changed = is_bar & (table["window_start"] >= incoming["window_start"].min())
    rows = table.loc[changed, list(ROW_COLUMNS)].reset_index(drop=True)
    return Step(history=merged.tail(history_bars).reset_index(drop=True), rows=rows)
