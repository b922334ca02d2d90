"""The SQLite-specific pieces of SQL, in one place (a PostgreSQL backend adds its own beside it).

Everything else in `storage/` is written in SQL both engines accept: `?` parameter markers are the
only other difference, and a PostgreSQL implementation translates them where it runs them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from storage.connection import SyncTx

# The current time as ISO-8601 UTC text with milliseconds, the shape `storage.values.to_iso` writes.
NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

IntegrityError = sqlite3.IntegrityError


def unique_violation(exc: BaseException, table: str, column: str) -> bool:
    """True when `exc` says a UNIQUE constraint on `table.column` refused the row."""
    return isinstance(exc, sqlite3.IntegrityError) and f"{table}.{column}" in str(exc)


def explain(sql: str) -> str:
    """The statement that shows `sql`'s query plan."""
    return "EXPLAIN QUERY PLAN " + sql


MAX_IN_LIST = 900  # parameters per `IN (...)` list, well under SQLite's variable limit


def in_chunks(values: Iterable[Any]) -> Iterator[tuple[str, Sequence[Any]]]:
    """(`?, ?, …` parameter markers, values) per chunk of `values`, for `WHERE x IN (…)` batches."""
    items = list(values)
    for i in range(0, len(items), MAX_IN_LIST):
        chunk = items[i:i + MAX_IN_LIST]
        yield ", ".join("?" * len(chunk)), chunk


def reserve_ids(tx: SyncTx, table: str, column: str, count: int) -> int:
    """The first of `count` fresh ids of an AUTOINCREMENT `table.column`, reserved for explicit
    inserts inside the caller's write transaction (so a batch knows its rows' ids without one
    round trip per row). Higher than any id the table ever used, as AUTOINCREMENT promises."""
    used = tx.value(f"SELECT MAX({column}) FROM {table}") or 0  # fixed names from storage/
    seq = tx.value("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)) or 0
    return max(int(used), int(seq)) + 1 if count > 0 else 0
