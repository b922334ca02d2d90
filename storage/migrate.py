"""Numbered SQL migrations (`storage/migrations/NNN_name.sql`), applied in order, one transaction each.

The SQL files are package data of `storage` (pyproject `[tool.setuptools.package-data]`) and are
read through `importlib.resources`, so an installed, non-editable copy finds them without the
source tree. Applied files are recorded in `schema_migrations` with a checksum; an edited applied
file or a database newer than the code stops start-up instead of guessing.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

from storage.dialect import NOW

# A directory of the installed `storage` package (a plain Path for a normal or editable install).
MIGRATIONS_DIR: Traversable = files("storage") / "migrations"
_NAME = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The migrations folder or the database schema is inconsistent."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Traversable = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files, checked for numbering without gaps or duplicates."""
    if not directory.is_dir():
        raise MigrationError(f"migrations folder not found: {directory}")
    found: list[Migration] = []
    for path in sorted((p for p in directory.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"bad migration file name: {path.name} (expected NNN_name.sql)")
        found.append(Migration(int(m.group(1)), m.group(2), path.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    for expected, mig in enumerate(found, start=1):
        if mig.version != expected:
            raise MigrationError(f"migration numbers must be 1..N without gaps; found {mig.version} at {expected}")
    return found


def _applied(conn: sqlite3.Connection) -> dict[int, str]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
        f" applied_at TEXT NOT NULL DEFAULT ({NOW}))"
    )
    return {int(r[0]): str(r[1]) for r in conn.execute("SELECT version, checksum FROM schema_migrations")}


def check_applied(applied: dict[int, str], migrations: list[Migration]) -> None:
    """Refuse a database newer than the code, or one whose applied file was edited since (both
    backends: the rule of the `schema_migrations` record)."""
    known = {m.version: m for m in migrations}
    newest = max(known, default=0)
    for version, checksum in applied.items():
        if version > newest:
            raise MigrationError(f"database schema version {version} is newer than this code ({newest})")
        if known[version].checksum != checksum:
            raise MigrationError(f"migration {version:03d} was edited after being applied")


def apply_migrations(conn: sqlite3.Connection, directory: Traversable = MIGRATIONS_DIR) -> int:
    """Apply pending migrations; return the schema version. Idempotent. Runs on the writer's thread."""
    migrations = load_migrations(directory)
    applied = _applied(conn)
    check_applied(applied, migrations)
    for mig in migrations:
        if mig.version in applied:
            continue
        # executescript() commits first and ignores isolation settings, so the transaction
        # control lives inside the script: the file and its record commit together or not at all.
        script = (
            "BEGIN IMMEDIATE;\n" + mig.sql + "\n;"
            f"INSERT INTO schema_migrations(version, name, checksum) VALUES"
            f" ({mig.version}, '{mig.name}', '{mig.checksum}');\nCOMMIT;"
        )
        try:
            conn.executescript(script)
        except Exception as exc:
            if conn.in_transaction:
                conn.rollback()
            # Another connection may have applied this file while we waited for the write
            # lock (two processes starting on a fresh database); that is success, not failure.
            if _applied(conn).get(mig.version) == mig.checksum:
                continue
            raise MigrationError(f"migration {mig.version:03d}_{mig.name} failed: {exc}") from exc
    return max([*applied, *(m.version for m in migrations)], default=0)
