"""Apply pending database migrations and print the schema version.

Usage: python run_migrations.py [DATABASE_URL]   (default: $DATABASE_URL or sqlite:///./data/bot.db)
"""

from __future__ import annotations

import asyncio
import os
import sys

from storage import MigrationError, open_database


async def _main(url: str) -> int:
    try:
        db = await open_database(url)
    except (MigrationError, ValueError) as exc:
        print(f"migration failed: {exc}", file=sys.stderr)
        return 1
    print(f"schema version {db.schema_version} ({db.path})")
    await db.close()
    return 0


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DATABASE_URL", "sqlite:///./data/bot.db")
    raise SystemExit(asyncio.run(_main(target)))
