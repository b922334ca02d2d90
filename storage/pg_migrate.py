"""The numbered migrations on PostgreSQL: the same sequence and `schema_migrations` record as
SQLite (`storage.migrate`), each file's PostgreSQL form from `migrations/postgresql/` where the
SQLite text is not portable (every one so far: types, identity columns, triggers).

Several processes may start at once on a fresh database: an advisory lock makes them take turns,
and each migration commits together with its record (PostgreSQL's DDL is transactional).
"""

from __future__ import annotations

from importlib.resources.abc import Traversable

import psycopg

from storage.migrate import MIGRATIONS_DIR, Migration, MigrationError, check_applied, load_migrations

DIALECT_DIR = "postgresql"
_LOCK = 0x6175746F6D  # "autom": the advisory lock key of schema changes


def pg_migrations(directory: Traversable = MIGRATIONS_DIR) -> list[Migration]:
    """The numbered sequence, each file in its PostgreSQL form when one exists."""
    dialect = directory / DIALECT_DIR
    out = []
    for mig in load_migrations(directory):
        own = dialect / f"{mig.version:03d}_{mig.name}.sql"
        out.append(Migration(mig.version, mig.name, own.read_text(encoding="utf-8")) if own.is_file() else mig)
    return out


def apply_pg_migrations(conn: psycopg.Connection, directory: Traversable = MIGRATIONS_DIR) -> int:
    """Apply pending migrations; return the schema version (the rules of `storage.migrate`)."""
    migrations = pg_migrations(directory)
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK,))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL,"
                     " checksum TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT"
                     " (to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')))")
        applied = {int(r[0]): str(r[1]) for r in conn.execute("SELECT version, checksum FROM schema_migrations")}
        check_applied(applied, migrations)
        for mig in migrations:
            if mig.version in applied:
                continue
            try:
                with conn.transaction():
                    conn.execute(mig.sql.encode())  # bytes: the file's own % signs are not parameter markers
                    conn.execute("INSERT INTO schema_migrations(version, name, checksum) VALUES (%s, %s, %s)",
                                 (mig.version, mig.name, mig.checksum))
            except psycopg.Error as exc:
                raise MigrationError(f"migration {mig.version:03d}_{mig.name} failed: {exc}") from exc
        return max([*applied, *(m.version for m in migrations)], default=0)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK,))
