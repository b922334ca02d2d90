"""SQLite access: one writer connection behind an asyncio lock, a few reader connections.

Why separate readers: aiosqlite serialises statements per connection, so a read on the
writer connection issued while another coroutine holds `BEGIN IMMEDIATE` would see that
transaction's uncommitted rows. Reads therefore go to reader connections (WAL lets them
read the last committed state while the writer works), round-robin so a burst of reads is
not queued behind one thread; check-then-write logic reads inside `transaction()` on the writer.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from storage.migrate import MIGRATIONS_DIR, apply_migrations

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
READERS = 3  # sqlite3 releases the GIL while a query runs, so readers on 2 cores overlap
Params = Sequence[Any] | dict[str, Any]


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
        raise ValueError("DATABASE_URL must be a sqlite:/// URL in this version")
    else:
        path = url
    if not path:
        raise ValueError("DATABASE_URL has no file path")
    return path


async def _connect(path: str) -> aiosqlite.Connection:
    # isolation_level=None: no implicit BEGINs; transactions are explicit.
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        conn.row_factory = aiosqlite.Row
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if path != ":memory:":
            await _enable_wal(conn)
            await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        await conn.close()  # an unclosed aiosqlite connection's thread keeps the process alive
        raise
    return conn


async def _enable_wal(conn: aiosqlite.Connection, attempts: int = 100) -> None:
    # Switching a fresh file to WAL needs an exclusive lock and SQLite answers "database is
    # locked" at once instead of running the busy handler (two processes starting together).
    for attempt in range(attempts):
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05)


class Transaction:
    """Statements inside one `BEGIN IMMEDIATE` transaction on the writer connection."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> aiosqlite.Cursor:
        return await self._conn.execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._conn.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Params = ()) -> aiosqlite.Row | None:
        rows = await self._conn.execute_fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[aiosqlite.Row]:
        return list(await self._conn.execute_fetchall(sql, params))

    async def insert(self, sql: str, params: Params = ()) -> int:
        cur = await self._conn.execute(sql, params)
        return int(cur.lastrowid or 0)


class Database:
    """The application's database handle (build it with `open_database`)."""

    def __init__(self, path: str, writer: aiosqlite.Connection, readers: list[aiosqlite.Connection],
                 schema_version: int) -> None:
        self.path = path
        self._writer = writer
        self._readers = readers
        self._next_reader = itertools.cycle(readers)
        self.schema_version = schema_version
        self._lock = _make_lock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """`BEGIN IMMEDIATE` under the writer lock; commit on success, roll back on error.

        IMMEDIATE takes SQLite's write lock up front, so two processes (or connections)
        doing check-then-write wait on `busy_timeout` instead of both passing the check.
        Never await network I/O inside.
        """
        async with self._lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self._writer)
            except BaseException:
                await self._writer.rollback()
                raise
            else:
                await self._writer.commit()

    async def fetchone(self, sql: str, params: Params = ()) -> aiosqlite.Row | None:
        """A read of committed data."""
        rows = await next(self._next_reader).execute_fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[aiosqlite.Row]:
        """A read of committed data.

        One call (execute + fetch + close in the connection's thread): a cursor left open
        between awaits keeps its WAL snapshot, and concurrent readers on this connection
        would then see stale data.
        """
        return list(await next(self._next_reader).execute_fetchall(sql, params))

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    async def execute(self, sql: str, params: Params = ()) -> int:
        """A single write statement; returns lastrowid.

        One statement is atomic in SQLite by itself, so it runs in autocommit mode under the
        writer lock: one round trip to the connection's thread instead of BEGIN/stmt/COMMIT.
        """
        async with self._lock:
            cur = await self._writer.execute(sql, params)
            return int(cur.lastrowid or 0)

    async def close(self) -> None:
        """Close both connections (idempotent)."""
        for conn in {id(c): c for c in [*self._readers, self._writer]}.values():
            try:
                await conn.close()
            except ValueError:  # already closed
                pass


def _make_lock():  # small indirection so tests can see the lock type is asyncio's
    import asyncio

    return asyncio.Lock()


async def open_database(database_url: str, *, migrations_dir: Path = MIGRATIONS_DIR) -> Database:
    """Open (creating the folder if needed) and migrate the database at `database_url`."""
    path = sqlite_path(database_url)
    if path != ":memory:":
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, at start
    writer = await _connect(path)
    readers: list[aiosqlite.Connection] = []
    try:
        version = await apply_migrations(writer, migrations_dir)
        if path == ":memory:":
            readers.append(writer)
        else:
            for _ in range(READERS):
                readers.append(await _connect(path))
    except BaseException:
        for conn in [*readers, writer]:
            await conn.close()
        raise
    log.info("database ready at %s (schema version %d)", path, version)
    return Database(path, writer, readers, version)
