"""One sqlite3 connection owned by one thread, and the synchronous transaction handle `SyncTx`.

Why not aiosqlite: a money operation is a read-check-write sequence of 5–10 statements, and
aiosqlite sends each statement to its thread separately (one event-loop round trip each, ~70 µs,
all under the writer lock). Here a whole transaction is one plain function that runs on the
connection's thread in one hop (`ThreadConnection.call`), which is also the only way to keep
the event loop from awaiting inside the writer lock statement by statement.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

BUSY_TIMEOUT_MS = 30_000
# Page cache per connection (KiB). SQLite's default (2 MiB) is smaller than the agent, position and
# ledger indexes of a few thousand users, so a tick's batch re-read pages from the OS on every
# statement; 64 MiB keeps a 100k-agent working set's hot pages (measured: the 5,000-fill batch
# write went from 120-180 ms to ~60 ms).
CACHE_KIB = 65_536
Params = Sequence[Any] | dict[str, Any]
T = TypeVar("T")


class SyncTx:
    """Statements of one transaction, run synchronously on the connection's own thread.

    Repositories take a `SyncTx`; the caller decides which transaction it belongs to.
    """

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """The first row of `sql`, or None."""
        return self.conn.execute(sql, params).fetchone()

    def all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Every row of `sql`."""
        return self.conn.execute(sql, params).fetchall()

    def value(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row, or None."""
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def run(self, sql: str, params: Params = ()) -> int:
        """A write statement; returns the number of rows it changed."""
        return self.conn.execute(sql, params).rowcount

    def insert(self, sql: str, params: Params = ()) -> int:
        """An INSERT; returns the new row id."""
        return int(self.conn.execute(sql, params).lastrowid or 0)

    def many(self, sql: str, rows: Iterable[Params]) -> None:
        """One statement over many parameter rows."""
        self.conn.executemany(sql, rows)


def connect_sync(path: str) -> sqlite3.Connection:
    """A connection with the production settings (WAL, NORMAL sync, foreign keys, busy timeout)."""
    # isolation_level=None: no implicit BEGINs; transactions are explicit.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=256)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if path != ":memory:":
            _enable_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _enable_wal(conn: sqlite3.Connection, attempts: int = 100) -> None:
    # Switching a fresh file to WAL needs an exclusive lock and SQLite answers "database is
    # locked" at once instead of running the busy handler (two processes starting together).
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


def in_write_transaction(conn: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    """`fn(SyncTx, *args)` in one `BEGIN IMMEDIATE` transaction: commit, or roll back on error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(SyncTx(conn), *args)
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
    return result


def in_read_snapshot(conn: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    """`fn(SyncTx, *args)` on one consistent snapshot (a deferred read transaction)."""
    if conn.in_transaction:  # an in-memory database reads on the writer, maybe mid-transaction
        return fn(SyncTx(conn), *args)
    conn.execute("BEGIN")
    try:
        return fn(SyncTx(conn), *args)
    finally:
        conn.rollback()


class ThreadConnection:
    """A sqlite3 connection and the single thread every call on it runs in."""

    def __init__(self, conn: sqlite3.Connection, pool: ThreadPoolExecutor) -> None:
        self.conn = conn
        self._pool = pool
        self._closed = False

    @classmethod
    async def open(cls, path: str, name: str) -> ThreadConnection:
        """Connect inside the new thread (the busy/WAL retries block it, not the event loop)."""
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        try:
            conn = await asyncio.get_running_loop().run_in_executor(pool, connect_sync, path)
        except BaseException:
            pool.shutdown(wait=False)
            raise
        return cls(conn, pool)

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue `fn(conn, *args)` on the connection's thread now; it runs even if the awaiting
        task is cancelled (so a queued rollback or commit is never skipped)."""
        if self._closed:
            raise ValueError("the database connection is closed")
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._pool, functools.partial(fn, self.conn, *args))

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(conn, *args)` on the connection's thread: one event-loop round trip."""
        return await self.submit(fn, *args)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return await self.call(_fetchall, sql, params)

    async def close(self) -> None:
        """Close the connection in its thread, then let the thread go (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, self.conn.close)
        finally:
            self._pool.shutdown(wait=False)


def _fetchall(conn: sqlite3.Connection, sql: str, params: Params) -> list[sqlite3.Row]:
    return conn.execute(sql, params).fetchall()
