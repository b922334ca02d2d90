"""The pieces of SQL that differ between SQLite and PostgreSQL, in one place.

Everything else in `storage/` is written in SQL both engines accept, with `?` markers and SQLite's
current-time expression `NOW`; the PostgreSQL connection translates those where it runs them
(`storage.pg_connection.pg_sql`). What cannot be translated statement by statement (reserving a
block of ids, which integrity error is which) asks the transaction which engine it is on.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from storage.connection import SyncTx

POSTGRES_SCHEMES = ("postgresql://", "postgres://")  # libpq's, and Railway's spelling


def is_postgres_url(url: str) -> bool:
    """`postgresql://…` or `postgres://…` (any libpq URI form): the PostgreSQL backend."""
    return url.strip().lower().startswith(POSTGRES_SCHEMES)


# The current time as ISO-8601 UTC text with milliseconds, the shape `storage.values.to_iso` writes.
NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

def is_integrity_error(exc: BaseException) -> bool:
    """True for a constraint refusal on either engine. psycopg is looked up, not imported: a
    SQLite-only process never loads it (~20 MB of resident memory)."""
    if isinstance(exc, sqlite3.IntegrityError):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.IntegrityError)


def unique_violation(exc: BaseException, table: str, column: str) -> bool:
    """True when `exc` says a UNIQUE constraint on `table.column` refused the row."""
    if isinstance(exc, sqlite3.IntegrityError):
        return f"{table}.{column}" in str(exc)
    diag = getattr(exc, "diag", None)  # PostgreSQL: "Key (column)=(…) already exists."
    return (is_integrity_error(exc) and diag is not None and diag.table_name == table
            and f"({column})" in (diag.message_detail or ""))


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
    if count <= 0:
        return 0
    if not isinstance(tx, SyncTx):  # PostgreSQL: the identity column's sequence
        # Every insert into these tables reserves through here, under one advisory lock per
        # sequence, so no other writer takes an id inside the block between nextval and setval.
        seq = tx.value(f"SELECT pg_get_serial_sequence('{table}', '{column}')")
        tx.value("SELECT pg_advisory_xact_lock(hashtext(?))", (seq,))
        first = int(tx.value("SELECT nextval(?::regclass)", (seq,)))
        tx.value("SELECT setval(?::regclass, ?)", (seq, first + count - 1))
        return first
    used = tx.value(f"SELECT MAX({column}) FROM {table}") or 0  # fixed names from storage/
    seq_value = tx.value("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)) or 0
    return max(int(used), int(seq_value)) + 1
