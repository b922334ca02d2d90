"""SQLite access: one writer connection behind an asyncio lock, a few reader connections.

Each connection lives on its own thread (`storage.connection.ThreadConnection`).

* `run(fn, *args)` runs a whole write transaction (reads, checks, writes) as one plain function
  on the writer's thread: one event-loop round trip, and nothing else can interleave. Money
  operations and batched writes use it.
* `read(fn, *args)` runs a function on one consistent snapshot of a reader connection.
* `transaction()` is the statement-by-statement form for composite non-hot writes.

Why separate readers: a read on the writer connection issued while another coroutine holds
`BEGIN IMMEDIATE` would see that transaction's uncommitted rows. Reads therefore go to reader
connections (WAL lets them read the last committed state while the writer works), round-robin
so a burst of reads is not queued behind one thread.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

from storage.connection import (
    BUSY_TIMEOUT_MS,
    Params,
    SyncTx,
    ThreadConnection,
    in_read_snapshot,
    in_write_transaction,
)
from storage.dialect import is_postgres_url
from storage.migrate import MIGRATIONS_DIR, apply_migrations

log = logging.getLogger(__name__)

__all__ = ["BUSY_TIMEOUT_MS", "Database", "SyncTx", "Transaction", "open_database", "sqlite_path"]
READERS = 3  # sqlite3 releases the GIL while a query runs, so readers on 2 cores overlap
T = TypeVar("T")


def sqlite_path(database_url: str) -> str:
    """`sqlite:///./data/bot.db` -> `./data/bot.db`; `sqlite:///:memory:` -> `:memory:`.

    A bare path is accepted too. Other schemes are refused with a clear message.
    """
    url = database_url.strip()
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
    elif url.startswith("sqlite://"):
        path = url[len("sqlite://"):] or ":memory:"
    elif "://" in url:
        raise ValueError("DATABASE_URL must be a sqlite:///… or postgresql://… URL")
    else:
        path = url
    if not path:
        raise ValueError("DATABASE_URL has no file path")
    return path


class Transaction:
    """Statements inside one `BEGIN IMMEDIATE` transaction on the writer, one hop each."""

    def __init__(self, writer: ThreadConnection) -> None:
        self._writer = writer

    async def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        return await self._writer.call(_execute, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._writer.call(_executemany, sql, rows)  # an iterator is consumed in the thread

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        rows = await self._writer.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return await self._writer.fetchall(sql, params)

    async def insert(self, sql: str, params: Params = ()) -> int:
        cur = await self._writer.call(_execute, sql, params)
        return int(cur.lastrowid or 0)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(SyncTx, *args)` inside this transaction, in one hop."""
        return await self._writer.call(_sync, fn, args)


def _execute(conn: sqlite3.Connection, sql: str, params: Params) -> sqlite3.Cursor:
    return conn.execute(sql, params)


def _executemany(conn: sqlite3.Connection, sql: str, rows: Iterable[Params]) -> None:
    conn.executemany(sql, rows)


def _sync(conn: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    return fn(SyncTx(conn), *args)


def _begin(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")


def _commit(conn: sqlite3.Connection) -> None:
    conn.commit()


def _rollback(conn: sqlite3.Connection) -> None:
    conn.rollback()


class Database:
    """The application's database handle (build it with `open_database`)."""

    dialect = "sqlite"

    def __init__(self, path: str, writer: ThreadConnection, readers: list[ThreadConnection],
                 schema_version: int) -> None:
        self.path = path
        self._writer = writer
        self._readers = readers
        self._next_reader = itertools.cycle(readers)
        self.schema_version = schema_version
        self._lock = asyncio.Lock()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(SyncTx, *args)` as one `BEGIN IMMEDIATE` transaction on the writer thread.

        The whole read-check-write sequence is one round trip under the writer lock; it commits
        when `fn` returns and rolls back when it raises. `fn` must not block on anything but SQL.
        IMMEDIATE takes SQLite's write lock up front, so two processes doing check-then-write
        wait on `busy_timeout` instead of both passing the check.
        """
        async with self._lock:
            # shield: once queued the transaction completes on the thread even if the caller is
            # cancelled, so the lock is not released while it is still running.
            return await asyncio.shield(self._writer.submit(in_write_transaction, fn, args))

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(SyncTx, *args)` on one consistent snapshot of committed data, in one round trip."""
        return await next(self._next_reader).call(in_read_snapshot, fn, args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """`BEGIN IMMEDIATE` under the writer lock, statement by statement; commit on success,
        roll back on error. Prefer `run` where the work is known up front. Never await network
        I/O inside.
        """
        async with self._lock:
            await self._writer.call(_begin)
            try:
                yield Transaction(self._writer)
            except BaseException:
                await asyncio.shield(self._writer.submit(_rollback))
                raise
            else:
                await self._writer.call(_commit)

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """A read of committed data."""
        rows = await next(self._next_reader).fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """A read of committed data (execute and fetch in one hop)."""
        return await next(self._next_reader).fetchall(sql, params)

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    async def execute(self, sql: str, params: Params = ()) -> int:
        """A single write statement; returns lastrowid.

        One statement is atomic in SQLite by itself, so it runs in autocommit mode under the
        writer lock: one round trip to the connection's thread instead of BEGIN/stmt/COMMIT.
        """
        async with self._lock:
            cur = await self._writer.call(_execute, sql, params)
            return int(cur.lastrowid or 0)

    async def close(self) -> None:
        """Close every connection (idempotent)."""
        for conn in {id(c): c for c in [*self._readers, self._writer]}.values():
            await conn.close()


async def open_database(database_url: str, *, migrations_dir: Traversable = MIGRATIONS_DIR) -> Database:
    """Open (creating the folder if needed) and migrate the database at `database_url`: a SQLite
    file, or a PostgreSQL server for `postgresql://` / `postgres://` (`storage.pg_db.PgDatabase`,
    the same interface)."""
    if is_postgres_url(database_url):
        from storage.pg_db import open_pg_database  # psycopg only when a server is asked for

        return await open_pg_database(database_url, migrations_dir=migrations_dir)  # type: ignore[return-value]
    path = sqlite_path(database_url)
    if path != ":memory:":
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, at start
    writer = await ThreadConnection.open(path, "db-writer")
    readers: list[ThreadConnection] = []
    try:
        version = await writer.call(apply_migrations, migrations_dir)
        if path == ":memory:":
            readers.append(writer)
        else:
            for i in range(READERS):
                readers.append(await ThreadConnection.open(path, f"db-reader-{i}"))
    except BaseException:
        for conn in [*readers, writer]:
            await conn.close()
        raise
    log.info("database ready at %s (schema version %d)", path, version)
    return Database(path, writer, readers, version)


async def ping(db: Database) -> None:
    """Raise when the database (either backend) does not answer a trivial query: the health check."""
    await db.fetchval("SELECT 1")
