"""Storage layer: aiosqlite database, migrations, repositories. Knows nothing above it."""

from storage.db import Database, Transaction, open_database, sqlite_path
from storage.migrate import MigrationError, apply_migrations, load_migrations

__all__ = ["Database", "MigrationError", "Transaction", "apply_migrations", "load_migrations",
           "open_database", "sqlite_path"]
