"""Parameterised SQL of the API's reads: the served tables, paged queries and single-row look-ups.

Only fixed identifiers from ``TableSpec`` are spliced into SQL (as quoted identifiers); every value is a
query parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg2 import sql

from api.models import IndicatorRow, Prediction, TickRecord
from api.pagination import InvalidCursorError, Order, Window
from tickflow.anomaly import Anomaly
from tickflow.schemas import BAR_FIELDS


@dataclass(frozen=True)
class TableSpec:
    """A served table: the columns returned and the ordering key (a time column, then tie-breakers)."""

    table: str
    columns: tuple[str, ...]
    key_columns: tuple[str, ...]


TICKS = TableSpec("tick_data", tuple(TickRecord.model_fields), ("event_time", "exchange", "trade_id"))
BARS = TableSpec("ohlcv", BAR_FIELDS, ("window_start",))
INDICATORS = TableSpec("indicators", tuple(IndicatorRow.model_fields), ("window_start",))
ANOMALIES = TableSpec(
    "anomalies", tuple(Anomaly.model_fields), ("event_time", "symbol", "anomaly_type", "interval")
)
PREDICTIONS = TableSpec("predictions", tuple(Prediction.model_fields), ("window_start", "model_version"))

LATEST_TICK = sql.SQL(
    "SELECT price, event_time AS time FROM tick_data WHERE symbol = %(symbol)s"
    " ORDER BY event_time DESC LIMIT 1"
)
LATEST_BAR_CLOSE = sql.SQL(
    "SELECT close AS price, last_trade_time AS time FROM ohlcv WHERE symbol = %(symbol)s"
    " AND interval = %(interval)s ORDER BY window_start DESC LIMIT 1"
)
HAS_DATA = sql.SQL(
    "SELECT EXISTS (SELECT 1 FROM ohlcv WHERE symbol = %(symbol)s)"
    " OR EXISTS (SELECT 1 FROM tick_data WHERE symbol = %(symbol)s) AS found"
)
# Distinct symbols of ohlcv by a loose index scan over its primary key (symbol, interval, window_start).
DISTINCT_BAR_SYMBOLS = sql.SQL(
    "WITH RECURSIVE s AS ("
    " (SELECT symbol FROM ohlcv ORDER BY symbol LIMIT 1)"
    " UNION ALL"
    " SELECT (SELECT o.symbol FROM ohlcv o WHERE o.symbol > s.symbol ORDER BY o.symbol LIMIT 1)"
    " FROM s WHERE s.symbol IS NOT NULL"
    ") SELECT symbol FROM s WHERE symbol IS NOT NULL"
)


def page_query(
    spec: TableSpec, filters: dict[str, Any], window: Window
) -> tuple[sql.Composed, dict[str, Any]]:
    """``SELECT`` of one page of ``spec.table``: rows equal to ``filters`` inside ``window``, one row more
    than ``window.limit`` (to tell whether another page follows).

    Raises:
        InvalidCursorError: the window's cursor has a different number of key parts than ``spec``.
    """
    params: dict[str, Any] = dict(filters)
    conditions = [sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in filters]
    time_column = sql.Identifier(spec.key_columns[0])
    if window.start is not None:
        conditions.append(sql.SQL("{} >= %(start)s").format(time_column))
        params["start"] = window.start
    if window.end is not None:
        conditions.append(sql.SQL("{} < %(end)s").format(time_column))
        params["end"] = window.end
    descending = window.order is Order.DESC
    if window.cursor is not None:
        if len(window.cursor) != len(spec.key_columns):
            raise InvalidCursorError("invalid cursor: it belongs to another endpoint")
        names = [f"cursor_{i}" for i in range(len(window.cursor))]
        conditions.append(
            sql.SQL("({}) {} ({})").format(
                sql.SQL(", ").join(map(sql.Identifier, spec.key_columns)),
                sql.SQL("<" if descending else ">"),
                sql.SQL(", ").join(map(sql.Placeholder, names)),
            )
        )
        params.update(zip(names, window.cursor, strict=True))
    direction = sql.SQL(" DESC" if descending else " ASC")
    query = sql.SQL("SELECT {columns} FROM {table}{where} ORDER BY {order} LIMIT %(limit)s").format(
        columns=sql.SQL(", ").join(map(sql.Identifier, spec.columns)),
        table=sql.Identifier(spec.table),
        where=sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL(""),
        order=sql.SQL(", ").join(sql.Identifier(c) + direction for c in spec.key_columns),
    )
    params["limit"] = window.limit + 1
    return query, params
