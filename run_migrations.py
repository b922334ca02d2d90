"""Apply pending database migrations and print the schema version; or move a SQLite database to
PostgreSQL.

Usage:
    python run_migrations.py [DATABASE_URL]
        migrate (default: $DATABASE_URL or sqlite:///./data/bot.db; sqlite:/// or postgresql://)
    python run_migrations.py --copy-from sqlite:///path/to/bot.db [POSTGRESQL_URL]
        copy every row of the SQLite file into an empty PostgreSQL database (default: $DATABASE_URL),
        in one transaction, verified before it commits (storage/copy.py)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from storage import MigrationError, open_database
from storage.dialect import is_postgres_url


async def _migrate(url: str) -> int:
    try:
        db = await open_database(url)
    except (MigrationError, ValueError) as exc:
        print(f"migration failed: {exc}", file=sys.stderr)
        return 1
    print(f"schema version {db.schema_version} ({db.path})")
    await db.close()
    return 0


def _copy(source: str, target: str) -> int:
    from storage.copy import CopyError, copy_sqlite_to_postgres

    if not is_postgres_url(target):
        print("the target must be a postgresql:// URL (argument or $DATABASE_URL)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        report = copy_sqlite_to_postgres(source, target)
    except (CopyError, MigrationError, ValueError) as exc:
        print(f"copy failed: {exc}", file=sys.stderr)
        return 1
    for table, rows in report.rows.items():
        print(f"  {table}: {rows} rows")
    print(f"copied {report.total} rows in {time.perf_counter() - started:.1f} s; counts, money sums and the "
          "ledger identities verified")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", default=os.environ.get("DATABASE_URL", "sqlite:///./data/bot.db"))
    parser.add_argument("--copy-from", metavar="SQLITE_URL", help="copy this SQLite database into URL")
    args = parser.parse_args(argv)
    if args.copy_from:
        return _copy(args.copy_from, args.url)
    return asyncio.run(_migrate(args.url))


if __name__ == "__main__":
    raise SystemExit(main())
