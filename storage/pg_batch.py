"""Batched writes on PostgreSQL: a tick's thousands of rows in a few statements.

SQLite's `executemany` costs a few microseconds a row in-process; PostgreSQL pays a statement's
round trip and execution per row even pipelined (~50 µs here). The repositories' batch statements
are simple, so they are rewritten per chunk into one statement:

* `INSERT INTO t(cols) VALUES (?, …) [ON CONFLICT …]` → `INSERT … VALUES (…), (…), … [ON CONFLICT …]`
* `UPDATE t SET a = ?, b = 'x' WHERE key = ?` → `UPDATE t SET a = v.a, b = 'x' FROM (VALUES …) AS
  v(a, key) WHERE t.key = v.key` (values cast to the columns' types; only when every key of the
  chunk is distinct, since executemany would apply repeated keys in order)

Anything else (an expression on the right, several conditions) is left to executemany.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage.pg_connection import PgSyncTx

MAX_PARAMS = 30_000  # well under PostgreSQL's 65,535 bind parameters per statement
MAX_ROWS = 1_000
_INSERT = re.compile(r"^\s*INSERT INTO (?P<table>\w+)\s*\((?P<cols>[^)]*)\)\s*VALUES\s*\((?P<marks>[\s?,]*)\)"
                     r"(?P<tail>.*)$", re.IGNORECASE | re.DOTALL)
_UPDATE = re.compile(r"^\s*UPDATE (?P<table>\w+) SET (?P<sets>.+?) WHERE (?P<key>\w+) = \?\s*$",
                     re.IGNORECASE | re.DOTALL)
_ASSIGN = re.compile(r"^\s*(?P<col>\w+)\s*=\s*(?P<value>\?|'[^'?]*'|\d+)\s*$")


def batch(tx: PgSyncTx, sql: str, rows: list[Sequence[Any]]) -> bool:
    """Write `rows` with `sql` in multi-row statements; False when `sql` is not a simple batch."""
    from storage.pg_connection import pg_sql

    if "%" in sql:  # a literal percent sign: leave the statement to the general path
        return False
    insert = _INSERT.match(sql)
    if insert and "?" not in insert.group("tail") and insert.group("marks").count("?") == len(rows[0]):
        width = len(rows[0])
        row = "(" + ", ".join(["%s"] * width) + ")"
        head = f"INSERT INTO {insert.group('table')} ({insert.group('cols')}) VALUES "
        tail = pg_sql(insert.group("tail"))
        for chunk in _chunks(rows, width):
            tx.conn.execute(head + ", ".join([row] * len(chunk)) + tail, [v for r in chunk for v in r])
        return True
    update = _UPDATE.match(sql)
    if update is None:
        return False
    assigns = [_ASSIGN.match(part) for part in update.group("sets").split(",")]
    if not all(assigns):
        return False
    bound = [a.group("col") for a in assigns if a and a.group("value") == "?"]
    fixed = [f"{a.group('col')} = {a.group('value')}" for a in assigns if a and a.group("value") != "?"]
    key, table = update.group("key"), update.group("table")
    if len(bound) + 1 != len(rows[0]) or len({r[-1] for r in rows}) != len(rows):
        return False
    types = _types(tx, table)
    names = [*bound, key]
    row = "(" + ", ".join(f"%s::{types[c]}" for c in names) + ")"
    sets = ", ".join([*(f"{c} = v.{c}" for c in bound), *fixed])
    for chunk in _chunks(rows, len(names)):
        tx.conn.execute(f"UPDATE {table} SET {sets} FROM (VALUES {', '.join([row] * len(chunk))}) AS"
                        f" v({', '.join(names)}) WHERE {table}.{key} = v.{key}", [v for r in chunk for v in r])
    return True


def _chunks(rows: list[Sequence[Any]], width: int) -> list[list[Sequence[Any]]]:
    size = max(1, min(MAX_ROWS, MAX_PARAMS // max(width, 1)))
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def _types(tx: PgSyncTx, table: str) -> dict[str, str]:
    """Each column's SQL type (for the casts of a VALUES list), read once per table."""
    cached = _TYPES.get(table)
    if cached is None:
        cached = _TYPES[table] = {str(r[0]): str(r[1]) for r in tx.conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = %s", (table,)).fetchall()}
    return cached


_TYPES: dict[str, dict[str, str]] = {}  # every database of one app has the same schema
