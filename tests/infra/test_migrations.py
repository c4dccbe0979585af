"""Schema migrations: apply to an empty database, re-apply as a no-op, both time layouts."""

from __future__ import annotations

from decimal import Decimal

import pglast
import psycopg2
import pytest

from infra.db.migrate import TimeLayout, migrate, plan
from tickflow.settings import Settings

TABLES = {"tick_data", "ohlcv", "indicators", "anomalies", "predictions"}


def test_migrations_apply_and_reapply_as_noop(fresh_db: Settings) -> None:
    # fresh_db already migrated once; a second run must change nothing
    assert migrate(fresh_db.postgres_dsn) == []
    with psycopg2.connect(fresh_db.postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT version, layout FROM tickflow_migrations ORDER BY version")
        rows = cur.fetchall()
        assert [r[0] for r in rows] == [m.version for m in plan(TimeLayout.NATIVE)]
        assert {r[1] for r in rows} == {"native"}
        cur.execute("SELECT relname FROM pg_class WHERE relkind = 'p'")
        assert {r[0] for r in cur.fetchall()} >= TABLES
        cur.execute(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent"
            " WHERE p.relname = 'ohlcv'"
        )
        assert cur.fetchone()[0] == 22  # 2015..2035 yearly + DEFAULT
        cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'ohlcv_window_start_brin'")
        assert "USING brin" in cur.fetchone()[0]


def test_ohlcv_keeps_traded_prices_exactly_and_upserts(fresh_db: Settings) -> None:
    row = (
        "BTC-USD",
        "1m",
        "2023-09-05T16:00:00Z",
        "2023-09-05T16:01:00Z",
        25741.02,
        25741.03,
        25741.02,
        25741.03,
        0.02188038 + 0.00184646,
        612.34,
        25741.025,
        2,
        "2023-09-05T16:00:01.281719Z",
        "2023-09-05T16:00:01.775613Z",
    )
    upsert = """INSERT INTO ohlcv (symbol, interval, window_start, window_end, open, high, low, close, volume,
                quote_volume, vwap, trade_count, first_trade_time, last_trade_time)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (symbol, interval, window_start) DO UPDATE SET close = EXCLUDED.close,
                trade_count = EXCLUDED.trade_count"""
    with psycopg2.connect(fresh_db.postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute(upsert, row)
        cur.execute(upsert, row)
        cur.execute("SELECT open, high, count(*) OVER (), first_trade_time FROM ohlcv")
        open_, high, count, first = cur.fetchone()
    assert (open_, high, count) == (Decimal("25741.02"), Decimal("25741.03"), 1)
    assert first.microsecond == 281719


def test_the_unread_hourly_view_is_dropped(fresh_db: Settings) -> None:
    with psycopg2.connect(fresh_db.postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('ohlcv_1h')")
        assert cur.fetchone() == (None,)


def test_rows_outside_the_yearly_partitions_land_in_default(fresh_db: Settings) -> None:
    with psycopg2.connect(fresh_db.postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO anomalies (anomaly_type, symbol, event_time, severity, value, threshold)"
            " VALUES ('price_spike', 'BTC-USD', '2099-01-01Z', 'warning', 0.07, 0.05)"
        )
        cur.execute("SELECT tableoid::regclass::text FROM anomalies")
        assert cur.fetchone()[0] == "anomalies_default"


@pytest.mark.parametrize("layout", list(TimeLayout))
def test_every_migration_of_each_layout_is_valid_sql(layout: TimeLayout) -> None:
    migrations = plan(layout)
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})
    for migration in migrations:
        text = migration.sql(layout)
        statements = pglast.parse_sql(text)  # raises on a syntax error
        assert statements
        assert ("/*@time_partitioned" in text) == (layout is TimeLayout.TIMESCALE and migration.version == 1)
    names = {m.path.name for m in migrations}
    other = TimeLayout.NATIVE if layout is TimeLayout.TIMESCALE else TimeLayout.TIMESCALE
    assert not any(name.endswith(f".{other.value}.sql") for name in names)


def test_timescale_layout_makes_hypertables_with_policies() -> None:
    text = "\n".join(m.sql(TimeLayout.TIMESCALE) for m in plan(TimeLayout.TIMESCALE))
    calls = [
        node.stmt.targetList[0].val.funcname[-1].sval
        for node in pglast.parse_sql(text)
        if type(node.stmt).__name__ == "SelectStmt" and node.stmt.targetList
    ]
    assert calls.count("create_hypertable") == len(TABLES)
    assert {"add_compression_policy", "add_retention_policy", "add_continuous_aggregate_policy"} <= set(calls)
