"""Where indicator rows go: PostgreSQL ``indicators`` (idempotent upsert), Redis (latest row per key with a
TTL, and a publish per row) and InfluxDB (measurement ``indicators``).

Rows are a pandas DataFrame with ``symbol``, ``interval``, ``window_start`` (integer µs since the epoch,
UTC), ``close`` and :data:`INDICATOR_FIELDS` (NaN where not yet defined). Writing the same rows twice
leaves every store as after the first write, so a replayed micro-batch changes nothing.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import psycopg2.extensions
import redis
from influxdb_client import Point, WritePrecision
from influxdb_client.client.write_api import WriteApi
from psycopg2.extras import execute_values

from tickflow.keys import indicators_channel, indicators_key
from tickflow.micros import from_micros
from tickflow.schemas import INDICATOR_FIELDS, json_dumps

MEASUREMENT = "indicators"
_COLUMNS = ("symbol", "interval", "window_start", "close", *INDICATOR_FIELDS)
_UPSERT = (
    f"INSERT INTO indicators ({', '.join(_COLUMNS)}, updated_at) VALUES %s "
    "ON CONFLICT (symbol, interval, window_start) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in ("close", *INDICATOR_FIELDS, "updated_at"))
)


def records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: ``window_start`` as a UTC datetime, NaN as None."""
    out = []
    for row in rows[list(_COLUMNS)].itertuples(index=False):
        record = {name: _clean(value) for name, value in zip(_COLUMNS, row, strict=True)}
        record["window_start"] = from_micros(row.window_start)
        out.append(record)
    return out


def upsert_indicators(conn: psycopg2.extensions.connection, rows: pd.DataFrame) -> int:
    """Upsert ``rows`` into ``indicators`` in one statement and commit; returns the number of rows."""
    if rows.empty:
        return 0
    now = datetime.now(UTC)
    values = [(*(r[c] for c in _COLUMNS), now) for r in records(rows)]
    with conn.cursor() as cur:
        execute_values(cur, _UPSERT, values, page_size=1000)
    conn.commit()
    return len(values)


def publish_indicators(client: redis.Redis, rows: pd.DataFrame, ttl_s: int) -> None:
    """Set ``indicators:{symbol}:{interval}`` to the latest row of each key (TTL ``ttl_s``) and publish
    every row on ``indicators:{symbol}``, in one pipeline round trip."""
    if rows.empty:
        return
    pipe = client.pipeline(transaction=False)
    latest: dict[tuple[str, str], tuple[datetime, bytes]] = {}
    for record in records(rows):
        payload = json_dumps(record)
        pipe.publish(indicators_channel(record["symbol"]), payload)
        key = (record["symbol"], record["interval"])
        if key not in latest or record["window_start"] >= latest[key][0]:
            latest[key] = (record["window_start"], payload)
    for (symbol, interval), (_, payload) in latest.items():
        pipe.set(indicators_key(symbol, interval), payload, ex=ttl_s)
    pipe.execute()


def write_influx(write_api: WriteApi, bucket: str, org: str, rows: pd.DataFrame) -> None:
    """Write one ``indicators`` point per row (tags ``symbol``, ``interval``; the defined values as
    fields; time ``window_start``, µs precision). Points of the same series and time overwrite."""
    if rows.empty:
        return
    points = []
    for record in records(rows):
        point = Point(MEASUREMENT).tag("symbol", record["symbol"]).tag("interval", record["interval"])
        for name in ("close", *INDICATOR_FIELDS):
            if record[name] is not None:
                point = point.field(name, float(record[name]))
        points.append(point.time(record["window_start"], WritePrecision.US))
    write_api.write(bucket=bucket, org=org, record=points)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value.item() if hasattr(value, "item") else value
