"""Storage layer: SQLite database (one thread per connection), migrations, repositories. Knows nothing above it."""

from storage.connection import SyncTx
from storage.db import Database, Transaction, open_database, sqlite_path
from storage.migrate import MigrationError, apply_migrations, load_migrations

__all__ = ["Database", "MigrationError", "SyncTx", "Transaction", "apply_migrations", "load_migrations",
           "open_database", "sqlite_path"]
