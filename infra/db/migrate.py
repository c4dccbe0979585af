"""Ordered SQL migrations with a migrations table (``tickflow_migrations``).

Files in ``infra/db/migrations`` are named ``NNNN_name.sql`` (applied everywhere) or
``NNNN_name.timescale.sql`` / ``NNNN_name.native.sql`` (applied where the TimescaleDB extension is
available, respectively where it is not). In native mode the marker ``/*@time_partitioned(col)*/`` in a
``CREATE TABLE`` becomes ``PARTITION BY RANGE (col)``; in TimescaleDB mode it stays a comment and a later
migration makes the table a hypertable. Each migration runs in one transaction; applied versions are
skipped, so re-running is a no-op.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import psycopg2
import psycopg2.extensions

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+?)(?:\.(?P<variant>timescale|native))?\.sql$")
_PARTITION_MARKER = re.compile(r"/\*@time_partitioned\((?P<column>[a-z_]+)\)\*/")


class TimeLayout(StrEnum):
    """How time-series tables are laid out."""

    TIMESCALE = "timescale"  # hypertables, compression, retention, continuous aggregate
    NATIVE = "native"  # PostgreSQL range partitioning + BRIN indexes


@dataclass(frozen=True)
class Migration:
    """One migration file chosen for a layout."""

    version: int
    name: str
    path: Path

    def sql(self, layout: TimeLayout) -> str:
        """The file's SQL with the partitioning marker rendered for ``layout``."""
        text = self.path.read_text(encoding="utf-8")
        if layout is TimeLayout.NATIVE:
            return _PARTITION_MARKER.sub(r"PARTITION BY RANGE (\g<column>)", text)
        return text


def plan(layout: TimeLayout, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations for ``layout`` in version order.

    Raises:
        ValueError: a file name does not follow the naming scheme, or two files claim one version.
    """
    chosen: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file {path.name!r} does not match NNNN_name[.timescale|.native].sql")
        variant = match["variant"]
        if variant is not None and variant != layout.value:
            continue
        version = int(match["version"])
        if version in chosen:
            raise ValueError(
                f"two migrations with version {version:04d}: {chosen[version].path.name}, {path.name}"
            )
        chosen[version] = Migration(version, match["name"], path)
    return [chosen[v] for v in sorted(chosen)]


def detect_layout(conn: psycopg2.extensions.connection) -> TimeLayout:
    """TIMESCALE when the server offers the ``timescaledb`` extension, else NATIVE."""
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
        return TimeLayout.TIMESCALE if cur.fetchone() else TimeLayout.NATIVE


def migrate(dsn: str, layout: TimeLayout | None = None) -> list[str]:
    """Apply the pending migrations to the database at ``dsn``; return the names applied (may be empty).

    Raises:
        psycopg2.Error: a migration failed; its transaction is rolled back and later ones are not run.
    """
    conn = psycopg2.connect(dsn)
    try:
        layout = layout or detect_layout(conn)
        with conn, conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS tickflow_migrations ("
                " version int PRIMARY KEY, name text NOT NULL, layout text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT version FROM tickflow_migrations")
            done = {row[0] for row in cur.fetchall()}
        applied = []
        for migration in plan(layout):
            if migration.version in done:
                continue
            with conn, conn.cursor() as cur:
                cur.execute(migration.sql(layout))
                cur.execute(
                    "INSERT INTO tickflow_migrations (version, name, layout) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, layout.value),
                )
            applied.append(f"{migration.version:04d}_{migration.name}")
        return applied
    finally:
        conn.close()
