"""PostgreSQL connections for the same repositories: `PgSyncTx` speaks `SyncTx`'s interface.

The repositories are plain functions on a `SyncTx` written in SQL both engines accept, with
`?` markers (see `storage.dialect`). Here a statement is translated once (cached): `?` becomes
`%s`, a literal `%` is doubled, SQLite's current-time expression becomes `iso_now()` (created by
the PostgreSQL form of migration 001). Rows come back indexable by position and by column name,
like `sqlite3.Row`; integral `numeric` results (PostgreSQL's SUM of a BIGINT) come back as int,
others as float, as SQLite returns them.

Why psycopg 3 (sync, on threads) and not asyncpg: a money operation is one plain function that
runs its 5–10 statements in one hop on the connection's thread (issue 8's storage interface);
asyncpg is coroutine-only, so every repository would have to become a coroutine awaiting each
statement under the writer lock — the cost that interface exists to avoid. psycopg is the
maintained libpq driver and runs exactly that shape.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psycopg
from psycopg.adapt import Loader

from storage.connection import Params
from storage.pg_batch import batch

SQLITE_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
PG_NOW = "iso_now()"
_TOKEN = re.compile(r"'(?:[^']|'')*'|\?|%")


@functools.lru_cache(maxsize=4096)
def pg_sql(sql: str) -> str:
    """`sql` (SQLite markers and time function) in PostgreSQL's terms; string literals kept."""
    sql = sql.replace(SQLITE_NOW, PG_NOW)

    def one(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "?":
            return "%s"
        if text == "%":
            return "%%"
        return text.replace("%", "%%")  # a literal: psycopg still reads % in it

    return _TOKEN.sub(one, sql)


@functools.lru_cache(maxsize=1024)
def _row_class(names: tuple[str, ...]) -> type:
    index = {name: i for i, name in enumerate(names)}

    class Row(tuple):
        """A row by position (`r[0]`) or by column name (`r["agent_id"]`); `dict(row)` works."""

        __slots__ = ()

        def __getitem__(self, key: Any) -> Any:
            return tuple.__getitem__(self, index[key] if isinstance(key, str) else key)

        def keys(self) -> tuple[str, ...]:
            return names

    return Row


def row_factory(cursor: Any) -> Callable[[Sequence[Any]], Any]:
    names = tuple(c.name for c in cursor.description) if cursor.description else ()
    cls = _row_class(names)
    return cls


class _NumericLoader(Loader):
    """`numeric` as int when written without a fraction (SUM of a BIGINT), else float (an AVG),
    as SQLite returns them."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        return int(text) if text.lstrip("-").isdigit() else float(text)


def connect(uri: str, *, isolation: psycopg.IsolationLevel | None = None,
            read_only: bool = False) -> psycopg.Connection:
    """A connection with the loaders above; statements run in explicit transactions, which
    psycopg opens with `isolation` (and READ ONLY) in their BEGIN: no extra round trip each."""
    # connect_timeout: an unreachable server fails start-up in seconds, not minutes
    conn = psycopg.connect(uri, autocommit=True, row_factory=row_factory, connect_timeout=10)
    conn.adapters.register_loader("numeric", _NumericLoader)
    if isolation is not None:
        conn.isolation_level = isolation
    conn.read_only = read_only or None
    return conn


class PgSyncTx:
    """`storage.connection.SyncTx` on a psycopg connection (the repositories cannot tell)."""

    __slots__ = ("conn",)

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def one(self, sql: str, params: Params = ()) -> Any:
        return self.conn.execute(pg_sql(sql), _params(params)).fetchone()

    def all(self, sql: str, params: Params = ()) -> list[Any]:
        return self.conn.execute(pg_sql(sql), _params(params)).fetchall()

    def value(self, sql: str, params: Params = ()) -> Any:
        row = self.conn.execute(pg_sql(sql), _params(params)).fetchone()
        return None if row is None else row[0]

    def run(self, sql: str, params: Params = ()) -> int:
        return self.conn.execute(pg_sql(sql), _params(params)).rowcount

    def insert(self, sql: str, params: Params = ()) -> int:
        """An INSERT; returns the new row's id: the first column of every table with generated ids
        is its id (0 when ON CONFLICT DO NOTHING inserted nothing)."""
        row = self.conn.execute(pg_sql(sql) + " RETURNING *", _params(params)).fetchone()
        return 0 if row is None else int(row[0])

    def many(self, sql: str, rows: Iterable[Params]) -> None:
        """One statement over many rows: simple INSERTs and UPDATEs become one multi-row statement
        per chunk (`storage.pg_batch`: a round trip per chunk instead of per row), others run as
        psycopg's pipelined executemany."""
        params = [_params(r) for r in rows]
        if params and batch(self, sql, params):
            return
        with self.conn.cursor() as cur:
            cur.executemany(pg_sql(sql), params)


def _params(params: Params) -> Sequence[Any] | dict[str, Any]:
    if isinstance(params, dict):
        raise TypeError("named parameters are not used by the repositories")  # keep one marker style
    return tuple(params)
