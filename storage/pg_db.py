"""PostgreSQL behind the same `Database` interface as SQLite (`storage.db`): nothing above
`storage/` knows which one runs.

The shape is SQLite's, on purpose: one writer connection per process behind an asyncio lock,
three reader connections, each connection on its own thread, a whole transaction one hop.
What PostgreSQL adds is several processes writing at once, so every `run` (every money
operation) is SERIALIZABLE and is run again from the start when PostgreSQL reports a
serialization failure or a deadlock: a check-then-write that raced another process's is retried
on the new state instead of both passing the check. `read` sees one REPEATABLE READ snapshot.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib.resources.abc import Traversable
from typing import Any, TypeVar

import psycopg
from psycopg import errors

from storage.connection import Params, ThreadConnection
from storage.migrate import MIGRATIONS_DIR
from storage.pg_connection import PgSyncTx, connect, pg_sql
from storage.pg_migrate import apply_pg_migrations

log = logging.getLogger(__name__)
T = TypeVar("T")
READERS = 3
RETRIES = 30  # serialization failures in a row before giving up (each waits a little longer)
UNIQUE_RETRIES = 3
_RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected)


def is_postgres_url(url: str) -> bool:
    """`postgresql://…` or `postgres://…` (Railway's spelling), any libpq URI form."""
    return url.strip().lower().startswith(("postgresql://", "postgres://"))


def libpq_uri(url: str) -> str:
    """The URI as libpq reads it (`postgres://` is accepted by libpq too; kept as given)."""
    return url.strip()


def in_serializable(conn: psycopg.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    """`fn(PgSyncTx, *args)` in one SERIALIZABLE transaction, retried from the start on a
    serialization failure or deadlock (its effects were rolled back, so running again is safe).

    A unique violation is retried a few times too: two processes that both checked "this
    idempotency key is new" and both inserted it get one of those instead of a serialization
    failure; run again, the loser finds the winner's committed journal entry and answers with it.
    A real duplicate fails the same way every time and is raised after `UNIQUE_RETRIES`.
    """
    unique_failures = 0
    for attempt in range(RETRIES):
        try:
            with conn.transaction():  # BEGIN ISOLATION LEVEL SERIALIZABLE (the writer's setting)
                return fn(PgSyncTx(conn), *args)
        except errors.UniqueViolation:
            unique_failures += 1
            if unique_failures > UNIQUE_RETRIES:
                raise
        except _RETRYABLE:
            if attempt == RETRIES - 1:
                raise
        time.sleep(min(0.2, 0.002 * 2 ** attempt) * random.random())  # jitter: racers spread out
    raise errors.SerializationFailure("gave up after repeated serialization failures")


def in_snapshot(conn: psycopg.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    """`fn(PgSyncTx, *args)` on one REPEATABLE READ, read-only snapshot (the readers' setting)."""
    with conn.transaction():
        return fn(PgSyncTx(conn), *args)


def _fetchall(conn: psycopg.Connection, sql: str, params: Params) -> list[Any]:
    return conn.execute(pg_sql(sql), tuple(params)).fetchall()


def _execute(conn: psycopg.Connection, sql: str, params: Params) -> psycopg.Cursor[Any]:
    return conn.execute(pg_sql(sql), tuple(params))


def _executemany(conn: psycopg.Connection, sql: str, rows: Iterable[Params]) -> None:
    with conn.cursor() as cur:
        cur.executemany(pg_sql(sql), [tuple(r) for r in rows])


def _sync(conn: psycopg.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    return fn(PgSyncTx(conn), *args)


def _begin(conn: psycopg.Connection) -> None:
    conn.execute("BEGIN")


def _commit(conn: psycopg.Connection) -> None:
    conn.execute("COMMIT")


def _rollback(conn: psycopg.Connection) -> None:
    conn.execute("ROLLBACK")


class PgTransaction:
    """Statements inside one transaction on the writer, one hop each (`storage.db.Transaction`)."""

    def __init__(self, writer: ThreadConnection) -> None:
        self._writer = writer

    async def execute(self, sql: str, params: Params = ()) -> Any:
        return await self._writer.call(_execute, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._writer.call(_executemany, sql, rows)

    async def fetchone(self, sql: str, params: Params = ()) -> Any:
        rows = await self._writer.call(_fetchall, sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[Any]:
        return await self._writer.call(_fetchall, sql, params)

    async def insert(self, sql: str, params: Params = ()) -> int:
        return await self._writer.call(lambda conn: PgSyncTx(conn).insert(sql, params))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._writer.call(_sync, fn, args)


class PgDatabase:
    """The application's database handle on PostgreSQL (build it with `open_pg_database`)."""

    dialect = "postgresql"

    def __init__(self, uri: str, writer: ThreadConnection, readers: list[ThreadConnection],
                 schema_version: int) -> None:
        self.path = uri.split("@", 1)[-1]  # for log lines: never the password
        self._writer = writer
        self._readers = readers
        self._next_reader = itertools.cycle(readers)
        self.schema_version = schema_version
        self._lock = asyncio.Lock()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(SyncTx, *args)` as one SERIALIZABLE transaction (retried on conflicts), one hop."""
        async with self._lock:
            return await asyncio.shield(self._writer.submit(in_serializable, fn, args))

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(SyncTx, *args)` on one consistent snapshot of committed data, in one round trip."""
        return await next(self._next_reader).call(in_snapshot, fn, args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgTransaction]:
        """A READ COMMITTED transaction on the writer, statement by statement (non-money writes)."""
        async with self._lock:
            await self._writer.call(_begin)
            try:
                yield PgTransaction(self._writer)
            except BaseException:
                await asyncio.shield(self._writer.submit(_rollback))
                raise
            else:
                await self._writer.call(_commit)

    async def fetchone(self, sql: str, params: Params = ()) -> Any:
        rows = await next(self._next_reader).call(_fetchall, sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[Any]:
        return await next(self._next_reader).call(_fetchall, sql, params)

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    async def execute(self, sql: str, params: Params = ()) -> int:
        """A single write statement (autocommit, under the writer lock); returns 0 (no rowid)."""
        async with self._lock:
            await self._writer.call(_execute, sql, params)
            return 0

    async def close(self) -> None:
        for conn in [*self._readers, self._writer]:
            await conn.close()


class PgThread(ThreadConnection):
    """A psycopg connection on its own thread that reconnects when the server dropped it (a
    restart, a failover, an idle timeout). A reader runs the read again on the new connection; a
    writer's call that found it broken fails (a write whose commit may have reached the server is
    not repeated blindly: the callers' idempotency keys and the inbox do that), the next one runs
    on a fresh connection."""

    def __init__(self, conn: psycopg.Connection, pool: ThreadPoolExecutor, uri: str, *, reads: bool) -> None:
        super().__init__(conn, pool)
        self.uri = uri
        self.reads = reads

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return super().submit(self._live, fn, args)

    def _live(self, _stale: psycopg.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self.conn.closed or self.conn.broken:
            self._reconnect()
        try:
            return fn(self.conn, *args)
        except psycopg.OperationalError:
            if not (self.reads and self.conn.broken):
                raise
            self._reconnect()
            return fn(self.conn, *args)

    def _reconnect(self) -> None:
        log.warning("PostgreSQL connection lost; reconnecting")
        self.conn = _connect_as(self.uri, self.reads)


def _connect_as(uri: str, reads: bool) -> psycopg.Connection:
    """A reader (REPEATABLE READ, READ ONLY snapshots) or the writer (SERIALIZABLE transactions)."""
    if reads:
        return connect(uri, isolation=psycopg.IsolationLevel.REPEATABLE_READ, read_only=True)
    return connect(uri, isolation=psycopg.IsolationLevel.SERIALIZABLE)


async def _open(uri: str, name: str, *, reads: bool = False) -> ThreadConnection:
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    try:
        conn = await asyncio.get_running_loop().run_in_executor(pool, _connect_as, uri, reads)
    except BaseException:
        pool.shutdown(wait=False)
        raise
    return PgThread(conn, pool, uri, reads=reads)


async def open_pg_database(url: str, *, migrations_dir: Traversable = MIGRATIONS_DIR) -> PgDatabase:
    """Connect to the PostgreSQL server at `url` and migrate its database."""
    uri = libpq_uri(url)
    writer = await _open(uri, "pg-writer")
    readers: list[ThreadConnection] = []
    try:
        version = await writer.call(apply_pg_migrations, migrations_dir)
        for i in range(READERS):
            readers.append(await _open(uri, f"pg-reader-{i}", reads=True))
    except BaseException:
        for conn in [*readers, writer]:
            await conn.close()
        raise
    database = PgDatabase(uri, writer, readers, version)
    log.info("database ready at PostgreSQL %s (schema version %d)", database.path, version)
    return database
